"""Tables: column roles, fitted pre-processing, embeddings + MLP, the table predictor, permutation importance and ONNX."""
