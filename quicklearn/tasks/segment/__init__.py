"""The segmentation task: photos with a mask per photo -> a pretrained timm encoder with a U-Net-style decoder
(segmentation-models-pytorch, the `[segment]` extra), fine-tuned; a class for every pixel."""
