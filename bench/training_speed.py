"""Training speed: what `aeserve train` runs against a minimal hand-written PyTorch loop.

Both train the same model (models.autoencoder.Autoencoder, 784 → 256 → 32 and back) on the same
scaled rows, held as one tensor, with Adam, MSE and batches of 256 on the CPU. The loop is the
limit: no validation pass, no early-stopping bookkeeping, no per-epoch progress.

    python -m bench.training_speed
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.prepare import mnist_like
from models.autoencoder import Autoencoder
from models.config import TrainConfig
from models.scaling import fit_scaling
from models.training import fit

ROWS, EPOCHS, BATCH = 10_000, 4, 256


@dataclass(frozen=True)
class TrainingSpeed:
    aeserve_samples_per_s: float
    loop_samples_per_s: float
    rows: int
    epochs: int
    threads: int

    @property
    def ratio(self) -> float:
        return self.aeserve_samples_per_s / self.loop_samples_per_s


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
    return result.rows_train * result.epochs_run / result.seconds


def hand_loop(X: np.ndarray) -> float:
    resolved = config().resolve(X.shape[1])
    torch.manual_seed(0)
    model = Autoencoder.from_config(resolved, X.shape[1])
    scaled = torch.from_numpy(fit_scaling(X, resolved.scaling, resolved.loss).apply(X))  # [n, d]
    optimizer = torch.optim.Adam(model.parameters(), lr=resolved.learning_rate)
    n = scaled.shape[0]
    start = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(n)
        for i in range(0, n, BATCH):
            batch = scaled[order[i : i + BATCH]]
            loss = F.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return n * EPOCHS / (time.perf_counter() - start)


def run(rounds: int = 2) -> TrainingSpeed:
    """Alternating rounds, best of each, so a busy neighbour does not decide the ratio."""
    X = mnist_like(ROWS, seed=3)
    ours, loop = [], []
    for _ in range(rounds):
        ours.append(aeserve_fit(X))
        loop.append(hand_loop(X))
    return TrainingSpeed(max(ours), max(loop), ROWS, EPOCHS, torch.get_num_threads())


if __name__ == "__main__":
    speed = run()
    print(
        f"aeserve train {speed.aeserve_samples_per_s:,.0f} samples/s, hand-written loop "
        f"{speed.loop_samples_per_s:,.0f} samples/s: {speed.ratio:.2f}x"
    )
