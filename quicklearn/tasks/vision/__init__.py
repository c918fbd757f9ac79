"""Images: folder, train/valid or CSV sources, decoding once into a uint8 cache, batch augmentation, timm backbones with offline weights, the image predictor, TTA, interpretation and ONNX."""
