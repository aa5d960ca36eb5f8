"""The `manifold` and `combined` scores: reconstruction error plus neighbour distances to the
training rows, each term divided by its mean on the calibration rows.

A reconstruction error sees how far a row lies from the manifold the autoencoder learned; it is
blind to a row that lands on the manifold where no normal row ever was (in a gap between clusters,
or at the far end of one). A distance to the nearest training rows on the manifold sees exactly
that. `manifold` measures it twice against the reconstructions of a sample of training rows, in
scaled units: from the row's own reconstruction ŝ (where on the manifold it lands) and from the
row s itself (where it lies, on the manifold or off it); each distance is the mean over the 5
nearest. Its reconstruction term divides each feature's error by that feature's mean error on the
calibration rows, so a feature the model always reconstructs loosely cannot drown one it
reconstructs tightly. `combined` measures one distance, between codes whitened by their spread,
to the 5th nearest, beside the plain mean feature error. Each term is divided by its mean over the
calibration rows, so on normal data each contributes about its weight (docs/quality.md has the
measurements).

Everything here is fixed at the end of training and baked into the scoring graph as constants:
the reference points (a seeded sample of training rows' codes or reconstructions), the centre and
spread they are whitened by (for reconstructions one spread for every feature, so the metric is
the scaled space's), the features' error scales and the terms' means.
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
RECONSTRUCTION_BUDGET = 500_000
"""Multiply-adds per served row each of the two distances may cost (R · d), where the fewest
reference rows allow: 4,000 rows at d ≤ 125, 1,000 from d = 500 (at d = 784 the two distances
cost 1.6 · 10^6; bench/score_cost.py measures the scoring graph's time against `combined`'s)."""
NEIGHBOURS = 5
"""A distance term is the distance to this nearest reference point (`combined`), or the mean
distance to this many nearest (`manifold`); fewer if R is."""
WEIGHTS: dict[Space, float] = {"codes": 1.0, "reconstructions": 2.0}
"""Each distance term's weight against the reconstruction term (each divided by its calibration
mean); docs/quality.md has the sweeps that chose them."""
FEATURE_ERROR_FLOOR = 1e-4
"""`manifold` divides each feature's error by its calibration mean, at least this share of the
mean over features: a feature reconstructed almost exactly (a near-constant column) must not turn
its rounding into the score."""
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
    reconstruction_mean: float  # mean reconstruction term of the calibration rows
    latent_mean: float  # mean neighbour distance of the calibration rows' points
    space: Space
    weight: float  # of each distance term, against the reconstruction term's 1
    # `manifold` only: each feature's error is divided by feature_scale [d] (its calibration
    # mean, floored); the row's own distance to the reference reconstructions is a second
    # distance term, divided by input_mean; distances average the `neighbours` nearest.
    feature_scale: np.ndarray | None = None
    input_mean: float | None = None

    @property
    def average(self) -> bool:
        """Whether a distance is the mean over the nearest (else the `neighbours`-th nearest)."""
        return self.space == "reconstructions"

    def whiten(self, points: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((points - self.center) / self.spread).astype(np.float32)
        return out


class LatentDistance(nn.Module):
    """points [n, k] → distance [n] to the `neighbours`-th nearest reference point, or the mean
    distance to that many nearest (`stats.average`), in whitened units.

    One matrix product ranks the references (|r|² - 2 u·r, the squared distance less |u|², in a
    fused Gemm; no [n, R, k] tensor); the distances to the few nearest are then taken directly,
    |u - r|² summed. The ranking form loses digits to cancellation where the distances are small
    against |u|², and how many depends on how the product is blocked, which depends on the other
    rows of the batch; the direct form does not, so a row's score is the same alone or batched
    (but where two references tie within the ranking's rounding). The direct form holds the
    nearest references of each row, [n, nb, k]: 5 · k floats a row besides the [n, R] ranking.
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
        self.average = stats.average

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        u = (codes - self.center) / self.spread  # [n, k]
        ranking = torch.addmm(self.reference_norms, u, self.reference.T, alpha=-2.0)  # [n, R]
        index = torch.topk(ranking, self.neighbours, dim=1, largest=False).indices  # [n, nb]
        nearest = self.reference[index]  # [n, nb, k]
        # Summed in float64: a float32 sum's rounding depends on where the row sits in the
        # batch (the kernels' vector lanes), and float64 hides that below float32's last bit.
        apart = u.unsqueeze(1) - nearest
        squared = (apart * apart).double().sum(dim=2)  # [n, nb]
        distances = torch.sqrt(squared)
        if self.average:
            return distances.mean(dim=1)
        return distances.max(dim=1).values


class CombinedScore(nn.Module):
    """(feature errors [n, d], points [n, k], scaled rows [n, d]) → scores [n]; the points are
    the codes or the scaled reconstructions, as `stats.space` says."""

    feature_scale: torch.Tensor | None  # [d]

    def __init__(self, stats: LatentStats) -> None:
        super().__init__()
        self.distance = LatentDistance(stats)
        self.space = stats.space
        self.reconstruction_mean = stats.reconstruction_mean
        self.distance_scale = stats.weight / stats.latent_mean
        scale = stats.feature_scale
        self.register_buffer(
            "feature_scale", None if scale is None else torch.from_numpy(scale.copy())
        )
        self.input_scale = None if stats.input_mean is None else stats.weight / stats.input_mean

    def forward(
        self, errors: torch.Tensor, points: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """The score in float32, its sums taken in float64 (see `LatentDistance`)."""
        if self.feature_scale is not None:
            errors = errors / self.feature_scale
        distance: torch.Tensor = self.distance(points)
        score = (
            errors.double().mean(dim=1) / self.reconstruction_mean + distance * self.distance_scale
        )
        if self.input_scale is not None:
            score = score + self.distance(rows) * self.input_scale
        return score.float()


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
    calibration_rows: np.ndarray | None = None,
) -> LatentStats:
    """The constants of the score from the training rows' points [n_train, k] (codes, whitened
    by their spread; or reconstructions, centred and divided by one spread, already sampled by
    the caller with `reference_sample`), and the calibration rows' points [n_cal, k], feature
    errors [n_cal, d] (the model's own) and, for reconstructions, scaled rows [n_cal, d]."""
    points = train_points.astype(np.float64)
    feature_scale = None
    if space == "codes":
        center = points.mean(axis=0)
        std = points.std(axis=0)
        spread = np.maximum(std, MIN_SPREAD * max(float(std.max()), 1.0))
        pick = reference_sample(len(points), REFERENCE_ROWS, seed)
        min_distance = MIN_LATENT_MEAN
        reconstruction = calibration_errors.mean(axis=1, dtype=np.float64)
    else:
        if calibration_rows is None:
            raise ValueError("a manifold score needs the calibration rows themselves")
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
        per_feature = calibration_errors.mean(axis=0, dtype=np.float64)  # [d]
        feature_scale = np.maximum(
            per_feature,
            max(FEATURE_ERROR_FLOOR * float(per_feature.mean()), MIN_RECONSTRUCTION_MEAN),
        ).astype(np.float32)
        reconstruction = (calibration_errors / feature_scale).mean(axis=1, dtype=np.float64)
    rows = train_points if pick is None else train_points[pick]
    partial = LatentStats(
        reference=((rows - center) / spread).astype(np.float32),
        center=center.astype(np.float32),
        spread=spread.astype(np.float32),
        neighbours=min(NEIGHBOURS, len(rows)),
        reconstruction_mean=max(float(np.mean(reconstruction)), MIN_RECONSTRUCTION_MEAN),
        latent_mean=1.0,
        space=space,
        weight=WEIGHTS[space],
        feature_scale=feature_scale,
    )
    latent_mean = max(_mean_distance(partial, calibration_points), min_distance)
    input_mean = None
    if space == "reconstructions" and calibration_rows is not None:  # checked above
        input_mean = max(_mean_distance(partial, calibration_rows), min_distance)
    return dataclasses.replace(partial, latent_mean=latent_mean, input_mean=input_mean)


def _mean_distance(stats: LatentStats, points: np.ndarray) -> float:
    """The mean distance term of points [n, k] as the graph computes it, in chunks."""
    distance = LatentDistance(stats)
    with torch.no_grad():
        distances = np.concatenate(
            [
                distance(torch.from_numpy(points[start : start + 8192])).numpy()
                for start in range(0, len(points), 8192)
            ]
        )
    return float(np.mean(distances, dtype=np.float64))


def latent_slack(stats: LatentStats, codes: np.ndarray, code_tolerance: np.ndarray) -> np.ndarray:
    """How much the distance [n] may differ between two float32 evaluations whose points
    [n, k] (codes or reconstructions) differ by at most `code_tolerance` [n, k] (element by
    element).

    The k-th smallest distance, and the mean of the k smallest, move by no more than the largest
    move of any distance: by the codes' own difference carried through the whitening (a distance
    is 1-Lipschitz), plus the rounding of |u|² - 2 u·r + |r|² (about k ulps of its largest term),
    which the square root turns into at most its square root, or its ratio to twice the distance
    where that is larger; the nearest distance is the one that rounding moves most.
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
    """The nearest reference distance of whitened points u [n, k], in float64, in chunks of rows
    so the [rows, R] matrix stays small."""
    reference = stats.reference.astype(np.float64)
    norms = (reference * reference).sum(1)
    nearest = np.empty(len(u))
    for start in range(0, len(u), 4096):
        chunk = u[start : start + 4096]
        squared = (chunk * chunk).sum(1)[:, None] - 2 * chunk @ reference.T + norms
        nearest[start : start + 4096] = squared.min(axis=1)
    out: np.ndarray = np.sqrt(np.maximum(nearest, 0.0))
    return out
