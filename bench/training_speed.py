"""Training speed: what `aeserve train` runs against a minimal hand-written PyTorch loop.

Both train the same model (models.autoencoder.Autoencoder, 784 → 256 → 32 and back) on the same
scaled rows, held as one tensor, with Adam, MSE and batches of 256 on the CPU. The loop is the
limit: no validation pass, no early-stopping bookkeeping, no per-epoch progress.

Both run on one torch thread: on a machine shared with other work, two spinning OpenMP threads
make timings swing by several times from run to run. Each round times both back to back, and
the median of the per-round ratios is reported. One untimed run of each comes first, so that
neither side pays the process's warm-up.

    python -m bench.training_speed
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.prepare import mnist_like
from core.config import TrainConfig
from models.autoencoder import Autoencoder
from models.scaling import fit_scaling
from models.training import fit

ROWS, EPOCHS, BATCH = 10_000, 8, 256


@dataclass(frozen=True)
class TrainingSpeed:
    aeserve_samples_per_s: float  # medians over the rounds
    loop_samples_per_s: float
    ratio: float  # the median of the rounds' ratios
    rows: int
    epochs: int
    threads: int


def config() -> TrainConfig:
    return TrainConfig(
        hidden_dims=[256],
        latent_dim=32,
        epochs=EPOCHS,
        batch_size=BATCH,
        early_stopping_patience=0,
        device="cpu",
        seed=0,
    )


def aeserve_fit(X: np.ndarray) -> float:
    """Samples/s of `models.training.fit`, which `aeserve train` calls (validation included)."""
    result = fit(X, config())
    per_epoch = min(result.rows_train, getattr(result.config, "max_rows_per_epoch", None) or ROWS)
    return per_epoch * result.epochs_run / result.seconds


def hand_loop(X: np.ndarray) -> float:
    """Samples/s from raw rows to trained weights, timed like `fit`: scaling and setup included."""
    start = time.perf_counter()
    resolved = config().resolve(X.shape[1])
    torch.manual_seed(0)
    model = Autoencoder.from_config(resolved, X.shape[1])
    scaled = torch.from_numpy(fit_scaling(X, resolved.scaling, resolved.loss).apply(X))  # [n, d]
    optimizer = torch.optim.Adam(model.parameters(), lr=resolved.learning_rate)
    n = scaled.shape[0]
    for _ in range(EPOCHS):
        order = torch.randperm(n)
        for i in range(0, n, BATCH):
            batch = scaled[order[i : i + BATCH]]
            loss = F.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return n * EPOCHS / (time.perf_counter() - start)


def run(rounds: int = 3) -> TrainingSpeed:
    X = mnist_like(ROWS, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # The first training run in a process pays one-time costs (library and allocator warm-up,
        # about a third of a run) that would be charged to whichever side happens to go first.
        aeserve_fit(X)
        hand_loop(X)
        ours, loop = [], []
        for _ in range(rounds):
            ours.append(aeserve_fit(X))
            loop.append(hand_loop(X))
    finally:
        torch.set_num_threads(threads)
    ratios = [a / b for a, b in zip(ours, loop, strict=True)]
    return TrainingSpeed(
        statistics.median(ours),
        statistics.median(loop),
        statistics.median(ratios),
        ROWS,
        EPOCHS,
        1,
    )


if __name__ == "__main__":
    speed = run()
    print(
        f"aeserve train {speed.aeserve_samples_per_s:,.0f} samples/s, hand-written loop "
        f"{speed.loop_samples_per_s:,.0f} samples/s: {speed.ratio:.2f}x"
    )
