"""The model folder: writing it (folder.py), its format and checksums (format.py), loading it (load.py), the
Predictor base (predictor.py), and ONNX export (onnx.py, graph.py)."""
