"""NVIDIA Triton through PyTriton, as its docs show: a bound Python model, Triton's dynamic batcher.

It answers the KServe v2 protocol: POST /v2/models/ae/infer.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

sys.path.insert(0, os.path.dirname(__file__))
from common import batching, open_session, score

session = open_session()


@batch
def infer(x):
    return {"scores": score(session, x).reshape(-1, 1)}


if __name__ == "__main__":
    port = int(sys.argv[1])
    dim = int(os.environ["BENCH_DIM"])
    max_batch, delay = batching()
    if max_batch > 1:
        config = ModelConfig(
            max_batch_size=max_batch,
            batcher=DynamicBatcher(max_queue_delay_microseconds=int(delay * 1e6)),
        )
    else:
        # No dynamic batcher: each request's own rows are the batch.
        config = ModelConfig(batching=False)
    shape = (dim,) if max_batch > 1 else (-1, dim)
    out_shape = (1,) if max_batch > 1 else (-1, 1)
    triton_config = TritonConfig(
        http_port=port, grpc_port=port + 1, metrics_port=port + 2, http_address="127.0.0.1"
    )
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name="ae",
            infer_func=infer,
            inputs=[Tensor(name="x", dtype=np.float32, shape=shape)],
            outputs=[Tensor(name="scores", dtype=np.float32, shape=out_shape)],
            config=config,
        )
        triton.serve()
