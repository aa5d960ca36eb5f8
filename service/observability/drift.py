"""Drift of scores: does live traffic still score like the calibration rows did?

Per model version, the last `WINDOW_ROWS` scores served are compared with the version's
calibration scores (held-out rows of its training data) in two ways:

- the **population stability index** over bins that split the calibration scores into equal
  shares: PSI = Σ (aᵢ − eᵢ) ln(aᵢ / eᵢ), aᵢ the window's share in bin i, eᵢ the calibration's.
  Below 0.1 the distributions match; above `DRIFT_ALERT_PSI` (0.25, the usual "significant
  shift" level) traffic no longer looks like the training data;
- the **share of scores above the threshold** against the share expected of normal data,
  1 − `threshold_quantile`.

Recording is on the inference hot path, so `observe` only appends the scores array to a deque;
the window, the PSI and the anomaly rate per `RATE_BUCKET_S` are worked out in bulk with NumPy
when Prometheus scrapes, when the console asks, or every `FOLD_EVERY` requests. Each server
process keeps its own window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.inference.calibration import count_on, histogram_edges

if TYPE_CHECKING:
    from service.inference.runtime import ModelRuntime

DRIFT_ALERT_PSI = 0.25
"""A PSI above this means live scores are distributed unlike the calibration scores."""
WINDOW_ROWS = 2048
MIN_ROWS = 200
"""The PSI is reported once the window holds this many scores; fewer give a noisy estimate."""
FOLD_EVERY = 1024
RATE_BUCKET_S = 10.0
RATE_BUCKETS = 60
MAX_VERSIONS = 64
_FLOOR = 1e-4  # an empty bin would make ln(a / e) infinite

Scores = npt.NDArray[np.floating[Any]]


def psi_bins(calibration: Scores) -> npt.NDArray[np.float64]:
    """Inner edges that split the calibration scores into equal shares: 2 to 10 bins, about ten
    calibration scores or more in each, so the calibration side of the PSI is not mostly noise."""
    bins = int(np.clip(calibration.size // 10, 2, 10))
    return np.quantile(calibration.astype(np.float64), np.linspace(0, 1, bins + 1)[1:-1])


def shares(inner_edges: npt.NDArray[np.float64], scores: Scores) -> npt.NDArray[np.float64]:
    slots = inner_edges.searchsorted(scores.astype(np.float64), side="right")
    counts = np.bincount(slots, minlength=inner_edges.size + 1)
    return counts / max(scores.size, 1)


def population_stability_index(
    expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]
) -> float:
    e = np.maximum(expected, _FLOOR)
    a = np.maximum(actual, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftSnapshot:
    model: str
    version: int
    window_rows: int
    psi: float | None
    """None until the window holds `MIN_ROWS` scores."""
    share_above_threshold: float | None
    expected_share_above_threshold: float
    histogram_edges: list[float]
    histogram_counts: list[int]
    """The window's scores on the calibration histogram's bins."""
    anomaly_rate: list[tuple[float, int, float]]
    """(bucket start, unix seconds; rows; share above the threshold), oldest first."""


class VersionDrift:
    """The window and anomaly-rate buckets of one model version."""

    def __init__(self, runtime: ModelRuntime, window_rows: int = WINDOW_ROWS) -> None:
        self.model = runtime.name
        self.version = runtime.version
        self.threshold = runtime.threshold
        self.expected_above = 1.0 - runtime.manifest.threshold_quantile
        self._psi_edges = psi_bins(runtime.calibration)
        self._expected = shares(self._psi_edges, runtime.calibration)
        self._histogram_edges = histogram_edges(runtime.calibration, runtime.threshold)
        self._window = np.empty(window_rows, dtype=np.float32)
        self._filled = 0
        self._next = 0
        self._rates: deque[list[float]] = deque(maxlen=RATE_BUCKETS)  # [start, rows, above]
        self._pending: deque[tuple[float, Scores]] = deque()
        self._folding = threading.Lock()

    def observe(self, scores: Scores) -> None:
        self._pending.append((time.time(), scores))
        if len(self._pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        with self._folding:
            pending = self._pending
            for _ in range(len(pending)):
                at, scores = pending.popleft()
                self._add(at, scores.ravel())

    def _add(self, at: float, scores: Scores) -> None:
        size = self._window.size
        if scores.size >= size:
            self._window[:] = scores[-size:]
            self._next, self._filled = 0, size
        else:
            first = min(scores.size, size - self._next)
            self._window[self._next : self._next + first] = scores[:first]
            self._window[: scores.size - first] = scores[first:]
            self._next = (self._next + scores.size) % size
            self._filled = min(size, self._filled + scores.size)
        start = math.floor(at / RATE_BUCKET_S) * RATE_BUCKET_S
        if not self._rates or self._rates[-1][0] != start:
            self._rates.append([start, 0.0, 0.0])
        bucket = self._rates[-1]
        bucket[1] += scores.size
        bucket[2] += int(np.count_nonzero(scores > self.threshold))

    def snapshot(self) -> DriftSnapshot:
        self.fold()
        with self._folding:
            window = self._window[: self._filled].copy()
            rates = [(start, int(rows), above / rows) for start, rows, above in self._rates if rows]
        enough = window.size >= MIN_ROWS
        return DriftSnapshot(
            model=self.model,
            version=self.version,
            window_rows=int(window.size),
            psi=population_stability_index(self._expected, shares(self._psi_edges, window))
            if enough
            else None,
            share_above_threshold=float(np.mean(window > self.threshold)) if window.size else None,
            expected_share_above_threshold=self.expected_above,
            histogram_edges=[float(e) for e in self._histogram_edges],
            histogram_counts=count_on(self._histogram_edges, window),
            anomaly_rate=rates,
        )


class ScoreDrift(Collector):
    """Every version's `VersionDrift`, exported as Prometheus gauges when scraped."""

    def __init__(self, window_rows: int = WINDOW_ROWS) -> None:
        self.window_rows = window_rows
        self._versions: OrderedDict[tuple[str, int], VersionDrift] = OrderedDict()
        self._adding = threading.Lock()

    def observe(self, runtime: ModelRuntime, scores: Scores) -> None:
        tracker = self._versions.get((runtime.name, runtime.version))
        if tracker is None:
            tracker = self._track(runtime)
        tracker.observe(scores)

    def _track(self, runtime: ModelRuntime) -> VersionDrift:
        key = (runtime.name, runtime.version)
        with self._adding:
            tracker = self._versions.get(key)
            if tracker is None:
                tracker = self._versions[key] = VersionDrift(runtime, self.window_rows)
                while len(self._versions) > MAX_VERSIONS:  # the oldest tracked goes first
                    self._versions.popitem(last=False)
            return tracker

    def snapshot(self, model: str, version: int) -> DriftSnapshot | None:
        tracker = self._versions.get((model, version))
        return tracker.snapshot() if tracker is not None else None

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        psi = GaugeMetricFamily(
            "aeserve_score_drift_psi",
            "Population stability index of the recent scores against the calibration scores.",
            labels=labels,
        )
        above = GaugeMetricFamily(
            "aeserve_score_share_above_threshold",
            "Share of the recent scores above the version's threshold.",
            labels=labels,
        )
        expected = GaugeMetricFamily(
            "aeserve_score_expected_share_above_threshold",
            "Share above the threshold expected of normal data: 1 - threshold_quantile.",
            labels=labels,
        )
        rows = GaugeMetricFamily(
            "aeserve_score_drift_window_rows", "Recent scores in the drift window.", labels=labels
        )
        for tracker in list(self._versions.values()):
            snapshot = tracker.snapshot()
            key = [snapshot.model, str(snapshot.version)]
            rows.add_metric(key, snapshot.window_rows)
            expected.add_metric(key, snapshot.expected_share_above_threshold)
            if snapshot.psi is not None:
                psi.add_metric(key, snapshot.psi)
            if snapshot.share_above_threshold is not None:
                above.add_metric(key, snapshot.share_above_threshold)
        yield from (psi, above, expected, rows)
