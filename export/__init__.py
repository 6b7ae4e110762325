"""Checkpoints -> ONNX -> Triton model repository, with parity checks at every step."""
