"""Training and ONNX export of autoencoders, and the training side of jobs: the only part of
aeserve that imports torch. It depends on `core`; the API process never imports it.
"""
