"""The `combined` score: reconstruction error plus the distance of the row's code to the training
rows' codes, each divided by its mean on the calibration rows.

A reconstruction error sees how far a row lies from the manifold the autoencoder learned; it is
blind to a row that lands on the manifold where no normal row ever was (in a gap between clusters,
or at the far end of one). The distance from the row's code to its k-th nearest neighbour among
the training rows' codes sees exactly that. Each term is divided by its mean over the calibration
rows, so on normal data each contributes about 1 and neither dominates because of its units
(docs/quality.md has the measurements).

Everything here is fixed at the end of training and baked into the scoring graph as constants:
the reference codes (a seeded sample of at most REFERENCE_ROWS training rows), the codes' centre
and spread, and the two means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

REFERENCE_ROWS = 1000
"""Most training codes kept in the graph: distances cost one [n, R] matrix per batch."""
NEIGHBOURS = 5
"""The score's latent term is the distance to this nearest reference code (fewer if R is)."""
MIN_SPREAD = 1e-3
"""Codes are divided by their spread, at least this share of the widest code dimension's, so a
dimension the training rows barely use cannot blow up a served row's distance."""
MIN_RECONSTRUCTION_MEAN = 1e-6
"""The reconstruction term's calibration mean is at least this (in the loss's units): data an
autoencoder reconstructs exactly (constant columns only) must not turn rounding into the score."""
MIN_LATENT_MEAN = 1e-3
"""The latent term's calibration mean is at least this (in spreads of the codes): on data of
many duplicated rows most distances are 0, and a served row one rounding away must not score
like an outlier."""
_EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class LatentStats:
    """What the combined score needs beyond the model: float32 arrays, k = the code width."""

    reference: np.ndarray  # [R, k] training codes, already centred and divided by spread
    center: np.ndarray  # [k]
    spread: np.ndarray  # [k], positive
    neighbours: int
    reconstruction_mean: float  # mean reconstruction error of the calibration rows
    latent_mean: float  # mean latent distance of the calibration rows

    def whiten(self, codes: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((codes - self.center) / self.spread).astype(np.float32)
        return out


class LatentDistance(nn.Module):
    """codes [n, k] → distance [n] to the k-th nearest reference code, in whitened units.

    Squared distances come from |u|² - 2 u·r + |r|² (one matrix product, no [n, R, k] tensor),
    clamped at 0 against the rounding of that form.
    """

    center: torch.Tensor  # [k]
    spread: torch.Tensor  # [k]
    reference: torch.Tensor  # [R, k]
    reference_norms: torch.Tensor  # [R]

    def __init__(self, stats: LatentStats) -> None:
        super().__init__()
        reference = torch.from_numpy(stats.reference.copy())
        self.register_buffer("center", torch.from_numpy(stats.center.copy()))
        self.register_buffer("spread", torch.from_numpy(stats.spread.copy()))
        self.register_buffer("reference", reference)
        self.register_buffer("reference_norms", (reference * reference).sum(dim=1))
        self.neighbours = stats.neighbours

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        u = (codes - self.center) / self.spread  # [n, k]
        squared = (
            (u * u).sum(dim=1, keepdim=True) - 2 * u @ self.reference.T + self.reference_norms
        )  # [n, R]
        nearest = torch.topk(squared, self.neighbours, dim=1, largest=False).values  # [n, nb]
        return torch.sqrt(torch.clamp(nearest[:, -1], min=0.0))


class CombinedScore(nn.Module):
    """(reconstruction error [n], codes [n, k]) → scores [n]."""

    def __init__(self, stats: LatentStats) -> None:
        super().__init__()
        self.distance = LatentDistance(stats)
        self.reconstruction_mean = stats.reconstruction_mean
        self.latent_mean = stats.latent_mean

    def forward(self, reconstruction: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        distance: torch.Tensor = self.distance(codes)
        return reconstruction / self.reconstruction_mean + distance / self.latent_mean


def fit_latent_stats(
    train_codes: np.ndarray,
    calibration_codes: np.ndarray,
    calibration_errors: np.ndarray,
    seed: int,
) -> LatentStats:
    """The constants of the combined score from the training rows' codes [n_train, k], and the
    calibration rows' codes [n_cal, k] and reconstruction errors [n_cal] (the model's own)."""
    codes = train_codes.astype(np.float64)
    center = codes.mean(axis=0)
    std = codes.std(axis=0)
    spread = np.maximum(std, MIN_SPREAD * max(float(std.max()), 1.0))
    rows = train_codes
    if len(rows) > REFERENCE_ROWS:
        pick = np.random.default_rng(seed).choice(len(rows), REFERENCE_ROWS, replace=False)
        rows = rows[np.sort(pick)]
    partial = LatentStats(
        reference=((rows - center) / spread).astype(np.float32),
        center=center.astype(np.float32),
        spread=spread.astype(np.float32),
        neighbours=min(NEIGHBOURS, len(rows)),
        reconstruction_mean=max(
            float(np.mean(calibration_errors, dtype=np.float64)), MIN_RECONSTRUCTION_MEAN
        ),
        latent_mean=1.0,
    )
    distance = LatentDistance(partial)
    with torch.no_grad():
        distances = np.concatenate(
            [
                distance(torch.from_numpy(calibration_codes[start : start + 8192])).numpy()
                for start in range(0, len(calibration_codes), 8192)
            ]
        )
    latent_mean = max(float(np.mean(distances, dtype=np.float64)), MIN_LATENT_MEAN)
    return LatentStats(
        reference=partial.reference,
        center=partial.center,
        spread=partial.spread,
        neighbours=partial.neighbours,
        reconstruction_mean=partial.reconstruction_mean,
        latent_mean=latent_mean,
    )


def latent_slack(stats: LatentStats, codes: np.ndarray, code_tolerance: np.ndarray) -> np.ndarray:
    """How much the latent term [n] may differ between two float32 evaluations whose codes
    [n, k] differ by at most `code_tolerance` [n, k] (element by element).

    The k-th smallest distance moves by no more than the largest move of any distance: by the
    codes' own difference carried through the whitening (a distance is 1-Lipschitz), plus the
    rounding of |u|² - 2 u·r + |r|² (about k ulps of its largest term), which the square root
    turns into at most its square root, or its ratio to twice the distance where that is larger.
    """
    spread = stats.spread.astype(np.float64)
    u = (codes.astype(np.float64) - stats.center) / spread
    moved = np.sqrt(((code_tolerance / spread) ** 2).sum(axis=1))  # [n]
    width = u.shape[1]
    largest = (u * u).sum(axis=1) + float((stats.reference.astype(np.float64) ** 2).sum(1).max())
    rounding = 4 * (width + 2) * _EPS32 * largest  # in squared units
    distance = _nearest(stats, u)
    root = np.sqrt(rounding)
    from_rounding = np.where(distance > 2 * root, rounding / np.maximum(distance, 1e-30), root)
    # The whitening itself rounds: (z - c) / s in float32.
    whitening = (
        2
        * _EPS32
        * np.sqrt((((np.abs(codes) + np.abs(stats.center)) / spread + np.abs(u)) ** 2).sum(axis=1))
    )
    slack: np.ndarray = moved + from_rounding + whitening
    return slack


def _nearest(stats: LatentStats, u: np.ndarray) -> np.ndarray:
    """The k-th nearest reference distance of whitened codes u [n, k], in float64, in chunks
    of rows so the [rows, R] matrix stays small."""
    reference = stats.reference.astype(np.float64)
    norms = (reference * reference).sum(1)
    kth = np.empty(len(u))
    for start in range(0, len(u), 4096):
        chunk = u[start : start + 4096]
        squared = (chunk * chunk).sum(1)[:, None] - 2 * chunk @ reference.T + norms
        nearest = np.partition(squared, stats.neighbours - 1, axis=1)
        kth[start : start + 4096] = nearest[:, stats.neighbours - 1]
    out: np.ndarray = np.sqrt(np.maximum(kth, 0.0))
    return out
