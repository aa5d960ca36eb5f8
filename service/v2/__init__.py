"""The Open Inference Protocol v2 (KServe / Triton REST), binary tensor extension included.

`schemas` holds the protocol's JSON objects, `wire` splits and assembles bodies (JSON header plus
binary tensors), `tensors` turns request tensors into float32 batches and results back into
tensors, and `models` maps protocol model names onto a `ModelRuntime` graph. Inference itself is
`ModelRuntime.infer`: this package adds no second inference path.
"""
