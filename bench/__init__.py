"""Benchmarks: serving speed against raw onnxruntime and peer servers, training speed, quality."""
