"""The limit: onnxruntime in this process, no HTTP, with the thread budget a server gets.

One session on one intra-op thread, as every server runs it; `streams` threads call
`session.run` on it at once (onnxruntime lets go of the GIL while it runs), as aeserve's
`batch_workers` threads and the naive server's threadpool do. Only the scores are fetched.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def open_session(onnx: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])


def vectors_per_s(
    session: ort.InferenceSession, x: np.ndarray, streams: int, seconds: float
) -> float:
    """Rows scored per second by `streams` threads running `x` back to back for `seconds`."""
    for _ in range(3):  # warm-up: arenas and memory patterns for this shape
        session.run(["scores"], {"x": x})
    runs = [0] * streams
    start_line = threading.Barrier(streams + 1)
    stop = threading.Event()

    def stream(i: int) -> None:
        start_line.wait()
        while not stop.is_set():
            session.run(["scores"], {"x": x})
            runs[i] += 1

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    done = sum(runs)  # runs finishing after this are not counted, nor is their time
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    return done * len(x) / elapsed
