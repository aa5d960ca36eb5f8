"""What each neighbour score costs at serving: the scoring graph of the serving benchmark's
mnist784 model trained with each score, timed on one onnxruntime thread in alternating rounds.

    python -m bench.score_cost
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

SCORES = ("combined", "manifold")
WORKLOADS = ((1, 3000), (256, 60))  # (rows per call, calls per round)
ROUNDS = 5


def session(score: str, X: np.ndarray, folder: Path) -> ort.InferenceSession:
    from core.config import TrainConfig
    from models.export import export_model
    from models.training import fit

    config = TrainConfig(hidden_dims=[256], latent_dim=32, epochs=3, score=score, device="cpu")
    export_model(fit(X, config), folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(folder / "autoencoder.onnx"), options, providers=["CPUExecutionProvider"]
    )


def main() -> None:
    from bench.prepare import mnist_like

    X = mnist_like(6000)
    with tempfile.TemporaryDirectory() as work:
        sessions = {}
        for score in SCORES:
            (Path(work) / score).mkdir()
            sessions[score] = session(score, X, Path(work) / score)
        for rows, calls in WORKLOADS:
            x = X[:rows].copy()
            times: dict[str, list[float]] = {score: [] for score in SCORES}
            for _ in range(ROUNDS):
                for score, run in sessions.items():
                    started = time.perf_counter()
                    for _ in range(calls):
                        run.run(["scores"], {"x": x})
                    times[score].append((time.perf_counter() - started) / calls * 1e6)
            medians = {score: float(np.median(t)) for score, t in times.items()}
            cells = ", ".join(f"{score} {us:.0f} µs" for score, us in medians.items())
            ratio = medians["manifold"] / medians["combined"]
            print(f"batch {rows}: {cells} per call; manifold / combined {ratio:.2f}x")


if __name__ == "__main__":
    main()
