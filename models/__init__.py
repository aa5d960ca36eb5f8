"""Training and ONNX export of autoencoders: the only part of aeserve that imports torch.

Import the submodules you need; this package itself stays empty so that `models.config` can be
used by the torch-free API process.
"""
