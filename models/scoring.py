"""The `manifold` and `combined` scores: reconstruction error plus a neighbour distance to the
training rows, each divided by its mean on the calibration rows.

A reconstruction error sees how far a row lies from the manifold the autoencoder learned; it is
blind to a row that lands on the manifold where no normal row ever was (in a gap between clusters,
or at the far end of one). The distance to the k-th nearest training row on the manifold sees
exactly that. `manifold` measures it between reconstructions (the row's projection ŝ onto the
manifold against the training rows' projections, in scaled units); `combined` between codes,
whitened by their spread. Each term is divided by its mean over the calibration rows, so on normal
data the reconstruction term contributes about 1 and the distance term about its weight
(docs/quality.md has the measurements).

Everything here is fixed at the end of training and baked into the scoring graph as constants:
the reference points (a seeded sample of training rows' codes or reconstructions), the centre and
spread they are whitened by (for reconstructions one spread for every feature, so the metric is
the scaled space's), and the two means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

Space = Literal["codes", "reconstructions"]
"""Where the neighbour distance is measured: `combined` scores use codes, `manifold` ones
reconstructions."""
SPACES: dict[str, Space] = {"combined": "codes", "manifold": "reconstructions"}

REFERENCE_ROWS = 1000
"""Most training codes kept in the graph: distances cost one [n, R] matrix per batch."""
RECONSTRUCTION_REFERENCE = (1000, 4000)
"""Fewest and most training reconstructions kept in the graph; between the two, as many as
RECONSTRUCTION_BUDGET allows for the row width d."""
RECONSTRUCTION_BUDGET = 1_000_000
"""Multiply-adds per served row the distances may cost (R · d): 1,275 reference rows at d = 784
(where the scoring graph then takes about twice the time of `combined`'s, bench/score_cost.py),
4,000 at d ≤ 250."""
NEIGHBOURS = 5
"""The score's distance term is the distance to this nearest reference point (fewer if R is)."""
WEIGHTS: dict[Space, float] = {"codes": 1.0, "reconstructions": 1.5}
"""The distance term's weight against the reconstruction term (each divided by its calibration
mean); docs/quality.md has the sweep that chose them."""
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


def reconstruction_reference_rows(width: int) -> int:
    """How many training reconstructions a `manifold` score keeps for rows of `width` features."""
    fewest, most = RECONSTRUCTION_REFERENCE
    return max(fewest, min(most, RECONSTRUCTION_BUDGET // max(width, 1)))


@dataclass(frozen=True)
class LatentStats:
    """What the manifold and combined scores need beyond the model: float32 arrays, k = the
    width of the points compared (the code width, or d for reconstructions)."""

    reference: np.ndarray  # [R, k] training points, already centred and divided by spread
    center: np.ndarray  # [k]
    spread: np.ndarray  # [k], positive
    neighbours: int
    reconstruction_mean: float  # mean reconstruction error of the calibration rows
    latent_mean: float  # mean neighbour distance of the calibration rows
    space: Space
    weight: float  # of the distance term, against the reconstruction term's 1

    def whiten(self, points: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((points - self.center) / self.spread).astype(np.float32)
        return out


class LatentDistance(nn.Module):
    """points [n, k] → distance [n] to the k-th nearest reference point, in whitened units.

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
    """(reconstruction error [n], points [n, k]) → scores [n]; the points are the codes or the
    scaled reconstructions, as `stats.space` says."""

    def __init__(self, stats: LatentStats) -> None:
        super().__init__()
        self.distance = LatentDistance(stats)
        self.space = stats.space
        self.reconstruction_mean = stats.reconstruction_mean
        self.distance_scale = stats.weight / stats.latent_mean

    def forward(self, reconstruction: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        distance: torch.Tensor = self.distance(points)
        return reconstruction / self.reconstruction_mean + distance * self.distance_scale


def reference_sample(n: int, most: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded sample of `most` of n training rows; None to keep them all."""
    if n <= most:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))


def fit_latent_stats(
    train_points: np.ndarray,
    calibration_points: np.ndarray,
    calibration_errors: np.ndarray,
    seed: int,
    space: Space,
) -> LatentStats:
    """The constants of the score from the training rows' points [n_train, k] (codes, whitened
    by their spread; or reconstructions, centred and divided by one spread, already sampled by
    the caller with `reference_sample`), and the calibration rows' points [n_cal, k] and
    reconstruction errors [n_cal] (the model's own)."""
    points = train_points.astype(np.float64)
    if space == "codes":
        center = points.mean(axis=0)
        std = points.std(axis=0)
        spread = np.maximum(std, MIN_SPREAD * max(float(std.max()), 1.0))
        pick = reference_sample(len(points), REFERENCE_ROWS, seed)
        min_distance = MIN_LATENT_MEAN
    else:
        # Centred and divided by one spread for every feature: the distances keep their ranking
        # (the metric is the scaled space's own), and |u|² stays near the distances themselves,
        # so float32 does not lose them in cancellation when the reconstructions barely vary.
        # A distance below MIN_SPREAD of the features' own scale is float32 rounding of the
        # reconstructions (a model that maps every row to one point), not a place on the
        # manifold: the spread and the calibration mean are kept at least that large.
        center = points.mean(axis=0)
        floor = MIN_SPREAD * max(1.0, float(np.sqrt(np.mean(center * center))))
        typical = float(np.sqrt(points.var(axis=0).mean()))
        spread = np.full(points.shape[1], max(typical, floor))
        min_distance = max(MIN_LATENT_MEAN, floor / float(spread[0]))
        pick = None
    rows = train_points if pick is None else train_points[pick]
    partial = LatentStats(
        reference=((rows - center) / spread).astype(np.float32),
        center=center.astype(np.float32),
        spread=spread.astype(np.float32),
        neighbours=min(NEIGHBOURS, len(rows)),
        reconstruction_mean=max(
            float(np.mean(calibration_errors, dtype=np.float64)), MIN_RECONSTRUCTION_MEAN
        ),
        latent_mean=1.0,
        space=space,
        weight=WEIGHTS[space],
    )
    distance = LatentDistance(partial)
    with torch.no_grad():
        distances = np.concatenate(
            [
                distance(torch.from_numpy(calibration_points[start : start + 8192])).numpy()
                for start in range(0, len(calibration_points), 8192)
            ]
        )
    latent_mean = max(float(np.mean(distances, dtype=np.float64)), min_distance)
    return dataclasses.replace(partial, latent_mean=latent_mean)


def latent_slack(stats: LatentStats, codes: np.ndarray, code_tolerance: np.ndarray) -> np.ndarray:
    """How much the distance [n] may differ between two float32 evaluations whose points
    [n, k] (codes or reconstructions) differ by at most `code_tolerance` [n, k] (element by
    element).

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
