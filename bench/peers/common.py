"""What every peer server shares: one onnxruntime session on one thread, scoring rows.

Peers import this file by path from their own venvs, so it needs nothing but numpy and onnxruntime.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort


def open_session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
    )


def score(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """(n, d) float32 → (n,) scores; only the output the answer needs is fetched."""
    return session.run(["scores"], {"x": x})[0].reshape(-1)


def batching() -> tuple[int, float]:
    """(max batch size, max queue delay in seconds) from the environment; size 1 means off."""
    return int(os.environ.get("BENCH_MAX_BATCH", "1")), float(os.environ.get("BENCH_DELAY_S", "0"))
