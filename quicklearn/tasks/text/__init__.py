"""Texts: tokenizing once, length-bucketed batches, a pretrained transformer encoder with a pooled head, the text predictor."""
