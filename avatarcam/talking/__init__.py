"""Talking Heads: training data, meta-training, one-shot fine-tuning, ONNX export and runtime."""
