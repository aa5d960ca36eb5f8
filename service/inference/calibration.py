"""A version's calibration scores as a histogram, and recent scores counted on the same bins.

The calibration scores (`calibration.npy`, sorted, one per held-out row) set the threshold: it is
their `threshold_quantile`. The console draws them as a histogram with the threshold as a line,
and lays live traffic over the same bins, so both are counted here with one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import CorruptVersion
from core.manifest import Manifest
from core.repository import Repository

HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class ScoreHistogram:
    edges: list[float]
    """Bin edges, `bins + 1` of them, ascending; the last bin also holds scores above its edge."""
    counts: list[int]


def read_calibration_scores(folder: Path, manifest: Manifest) -> npt.NDArray[np.float32]:
    """The sorted calibration scores of a version folder, as its manifest names them."""
    file_name = manifest.calibration.file
    try:
        scores = np.load(folder / file_name, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorruptVersion(f"{folder}: {file_name} cannot be read: {exc}") from exc
    if scores.ndim != 1 or scores.dtype.kind != "f" or not np.isfinite(scores).all():
        raise CorruptVersion(f"{folder}: {file_name} must hold a 1-D array of finite scores")
    return np.sort(scores.astype(np.float32))


def histogram_edges(
    calibration: npt.NDArray[np.floating[Any]], threshold: float, bins: int = HISTOGRAM_BINS
) -> npt.NDArray[np.float64]:
    """Equal-width bins from 0 (scores are losses) to past the threshold and the largest score."""
    top = max(float(calibration.max(initial=0.0)), threshold) * 1.05
    low = min(0.0, float(calibration.min(initial=0.0)))
    if top <= low:
        top = low + 1.0
    return np.linspace(low, top, bins + 1)


def count_on(edges: npt.NDArray[np.float64], scores: npt.NDArray[np.floating[Any]]) -> list[int]:
    """Counts of `scores` per bin; those past the last edge go to the last bin, so none is lost."""
    clipped = np.clip(scores.astype(np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return [int(c) for c in counts]


def calibration_histogram(
    calibration: npt.NDArray[np.floating[Any]], threshold: float, bins: int = HISTOGRAM_BINS
) -> ScoreHistogram:
    edges = histogram_edges(calibration, threshold, bins)
    return ScoreHistogram([float(e) for e in edges], count_on(edges, calibration))


@dataclass(frozen=True)
class VersionCalibration:
    threshold: float
    threshold_quantile: float
    n: int
    histogram: ScoreHistogram


def version_calibration(repository: Repository, name: str, version: int) -> VersionCalibration:
    """The calibration histogram of any published version, loaded or not (404s as the manifest)."""
    manifest = repository.manifest(name, version)
    scores = read_calibration_scores(repository.version_dir(name, version), manifest)
    return VersionCalibration(
        threshold=manifest.threshold,
        threshold_quantile=manifest.threshold_quantile,
        n=int(scores.size),
        histogram=calibration_histogram(scores, manifest.threshold),
    )
