"""Inference without HTTP: runtime options, input checks, loading verified versions into
onnxruntime sessions, the batch-first runtime, the dynamic batcher and the registry of loaded
versions. Nothing here imports FastAPI."""
