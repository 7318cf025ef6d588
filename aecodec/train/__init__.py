"""Training, checkpoints and ONNX export. The only subpackage that imports torch."""
