"""Fitting an autoencoder: seeded split, scaling, a plain epoch loop and early stopping.

The data lives in one tensor on the training device and is shuffled by index permutation, so an
epoch is a handful of tensor ops per batch and no Python per row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from core import rules
from core.config import ConfigError, TrainConfig
from models.autoencoder import Autoencoder
from models.scaling import Scaling, fit_scaling
from models.scoring import (
    SPACES,
    LatentStats,
    fit_latent_stats,
    reconstruction_reference_rows,
    reference_sample,
)

Progress = Callable[[int, int, float, float], None]
ShouldStop = Callable[[], bool]
LossFn = Callable[[Autoencoder, torch.Tensor], torch.Tensor]


class TrainingCancelled(Exception):
    """`should_stop()` asked the run to end; nothing is published."""


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite, almost always from too large a learning rate."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float


@dataclass
class TrainResult:
    """The best model (on the CPU, in eval mode) and everything the export needs to describe it."""

    model: Autoencoder
    config: TrainConfig  # resolved for the data's input dimension
    scaling: Scaling
    validation_rows: np.ndarray  # raw float32 [n_val, d]; also the calibration set
    rows_train: int
    best_epoch: int
    seconds: float
    device: str
    history: list[EpochStats] = field(default_factory=list)
    latent: LatentStats | None = None  # the neighbour term's constants; None: reconstruction

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def best(self) -> EpochStats:
        return self.history[self.best_epoch - 1]


def split_rows(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled row indices (train, validation) for n rows."""
    n_val = rules.check_validation_split(n, validation_fraction)
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val:], order[:n_val]


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but CUDA is not available here")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def make_loss_fn(loss: str) -> LossFn:
    """Mean loss of a batch of scaled rows [b, d] against their reconstructions."""
    if loss == "bce":
        # From the logits: log-sum-exp form, finite even where the sigmoid saturates.
        return lambda model, s: F.binary_cross_entropy_with_logits(
            model.decode_logits(model.encode(s)), s
        )
    return lambda model, s: F.mse_loss(model(s), s)


def make_optimizer(model: Autoencoder, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
    # The fused kernel updates each parameter in one pass instead of a dozen elementwise ops: on
    # the CPU it cuts the step to about a third, the same update up to float rounding.
    return torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if config.learning_rate_schedule == "constant":
        return None
    patience = max(1, config.early_stopping_patience // 4)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)


def train_one_epoch(
    model: Autoencoder,
    X_train: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batch_size: int,
    generator: torch.Generator,
    max_rows: int | None = None,
) -> float:
    """One pass over X_train [n, d] in a seeded random order; the mean loss per row.

    With `max_rows`, the pass stops after that many rows of the permutation: a fresh random
    sample of the data each epoch.
    """
    model.train()
    # The permutation is drawn on the CPU generator so the order does not depend on the device.
    order = torch.randperm(X_train.shape[0], generator=generator)[:max_rows].to(X_train.device)
    n = order.shape[0]
    total = torch.zeros((), device=X_train.device)
    for start in range(0, n, batch_size):
        batch = X_train.index_select(0, order[start : start + batch_size])  # [b, d]
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        total += loss.detach() * batch.shape[0]  # stays on the device: no sync per batch
    return float(total) / n


@torch.no_grad()
def evaluate(model: Autoencoder, X: torch.Tensor, loss_fn: LossFn, batch_size: int) -> float:
    """Mean loss per row of X [n, d], in batches so memory stays bounded."""
    model.eval()
    total = torch.zeros((), device=X.device)
    for start in range(0, X.shape[0], batch_size):
        batch = X[start : start + batch_size]
        total += loss_fn(model, batch) * batch.shape[0]
    return float(total) / X.shape[0]


def fit(
    X: np.ndarray,
    config: TrainConfig,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> TrainResult:
    """Train on raw rows X [n, d]; return the weights of the epoch with the lowest val loss."""
    started = time.perf_counter()
    rules.check_min_rows(X.shape[0])
    config = config.resolve(X.shape[1])
    train_idx, val_idx = split_rows(X.shape[0], config.validation_fraction, config.seed)
    X_train, X_val = X[train_idx], X[val_idx]
    scaling = fit_scaling(X_train, config.scaling, config.loss)
    if config.loss == "bce":
        scaled = scaling.unclipped(X_train)  # [n_train, d]
        rules.check_bce_range(scaled.min(axis=0), scaled.max(axis=0), config.scaling)

    device = pick_device(config.device)
    # Each part scaled on its own: no scaled copy of all rows to gather the parts from.
    S_train = torch.from_numpy(scaling.apply(X_train)).to(device)  # [n_train, d]
    S_val = torch.from_numpy(scaling.apply(X_val)).to(device)  # [n_val, d]

    # Seed a private RNG stream so callers' global torch state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Autoencoder.from_config(config, X.shape[1]).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    loss_fn = make_loss_fn(config.loss)
    batch_size = config.batch_size

    history: list[EpochStats] = []
    best_epoch, best_val = 0, math.inf
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(1, config.epochs + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training cancelled at epoch {epoch}")
        train_loss = train_one_epoch(
            model, S_train, optimizer, loss_fn, batch_size, generator, config.max_rows_per_epoch
        )
        val_loss = evaluate(model, S_val, loss_fn, batch_size)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch} (train loss {train_loss}, val loss "
                f"{val_loss}); lower learning_rate (now {config.learning_rate})"
            )
        history.append(EpochStats(epoch, train_loss, val_loss))
        if scheduler is not None:
            scheduler.step(val_loss)
        if progress is not None:
            progress(epoch, config.epochs, train_loss, val_loss)
        if val_loss < best_val:
            best_epoch, best_val = epoch, val_loss
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif (
            config.early_stopping_patience and epoch - best_epoch >= config.early_stopping_patience
        ):
            break

    model.load_state_dict(best_state)
    model = model.cpu().eval()
    latent = None
    if config.score != "reconstruction":
        latent = latent_stats(
            model, scaling, config.loss, X_train, X_val, config.seed, config.score
        )
    return TrainResult(
        model=model,
        config=config,
        scaling=scaling,
        validation_rows=X_val.astype(np.float32, copy=False),  # X_val is a copy already
        rows_train=len(train_idx),
        best_epoch=best_epoch,
        seconds=time.perf_counter() - started,
        device=device.type,
        history=history,
        latent=latent,
    )


@torch.no_grad()
def latent_stats(
    model: Autoencoder,
    scaling: Scaling,
    loss: str,
    X_train: np.ndarray,
    X_val: np.ndarray,
    seed: int,
    score: str,
    batch_size: int = 65_536,
) -> LatentStats:
    """The score's constants from the trained model: the training rows' points (codes for
    `combined`; for `manifold`, scaled reconstructions of a seeded sample of them), and the
    points, feature errors and scaled rows of the held-out (calibration) rows, as the graph
    computes them."""
    space = SPACES[score]

    def forward(X: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(scaled rows, points, feature errors) of the rows X, a chunk at a time."""
        for start in range(0, len(X), batch_size):
            s = torch.from_numpy(scaling.apply(X[start : start + batch_size]))
            z = model.encode(s)
            logits = model.decode_logits(z)
            s_hat = model.output(logits)
            if loss == "bce":
                e = F.binary_cross_entropy_with_logits(logits, s, reduction="none")
            else:
                e = (s - s_hat) ** 2
            yield s, (z if space == "codes" else s_hat), e

    if space == "reconstructions":
        most = reconstruction_reference_rows(X_train.shape[1])
        pick = reference_sample(len(X_train), most, seed)
        X_train = X_train if pick is None else X_train[pick]
    train_points = np.concatenate([points.numpy() for _, points, _ in forward(X_train)])
    calibration = list(forward(X_val))
    return fit_latent_stats(
        train_points,
        np.concatenate([points.numpy() for _, points, _ in calibration]),
        np.concatenate([errors.numpy() for _, _, errors in calibration]),
        seed,
        space,
        calibration_rows=(
            np.concatenate([rows.numpy() for rows, _, _ in calibration])
            if space == "reconstructions"
            else None
        ),
    )
