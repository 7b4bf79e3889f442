"""Running trained networks: the weights manifest and ONNX Runtime sessions."""
