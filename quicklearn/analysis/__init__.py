"""Looking at trained models: the Interpretation (confusion matrix, per-class table, top losses), evaluation on labelled data, fitted multi-label thresholds and the plots."""
