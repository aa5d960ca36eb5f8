"""The API process: inference on onnxruntime behind FastAPI, training jobs handed to other
processes, the command line. It imports `core`, never `models` or torch (docs/architecture.md).
"""
