"""Prometheus counters and histograms that record in O(1) and count in bulk.

prometheus_client's Histogram takes a lock and walks its buckets in Python on every `observe`,
and its Counter locks on every `inc`: with the score histogram, a batch-1 /score spent a tenth of
its time in metrics. These collectors append each observation to a deque (thread-safe without a
lock); the deque is folded into the totals with NumPy (one `searchsorted` and `bincount` per label
set) when it holds `fold_every` observations or `fold_rows` values, and whenever Prometheus
scrapes, so memory stays bounded and a scrape sees every observation. prometheus_client still
writes the exposition, from the metric families they yield.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]
FOLD_EVERY = 4096
FOLD_ROWS = 1 << 16


class _Bulk(Collector):
    """Observations queue in a deque; one thread at a time folds them into totals."""

    def __init__(self, fold_every: int) -> None:
        self.fold_every = fold_every
        self._pending: deque[tuple[Labels, Any]] = deque()
        self._folding = threading.Lock()

    def _append(self, item: tuple[Labels, Any]) -> None:
        self._pending.append(item)
        if len(self._pending) >= self.fold_every:
            self.fold()

    def _take(self) -> list[tuple[Labels, Any]]:
        """Everything queued so far; call with `_folding` held (appends may go on meanwhile)."""
        pending = self._pending
        return [pending.popleft() for _ in range(len(pending))]

    def fold(self) -> None:
        raise NotImplementedError

    def forget(self, drop: Callable[[Labels], bool]) -> int:
        """Remove every label set for which `drop` is true, all observations folded in first;
        how many were removed."""
        self.fold()
        with self._folding:
            gone = [labels for labels in self._label_sets() if drop(labels)]
            for labels in gone:
                self._remove(labels)
        return len(gone)

    def label_sets(self) -> list[Labels]:
        """Every label set recorded so far, all observations folded in."""
        self.fold()
        with self._folding:
            return self._label_sets()

    def _label_sets(self) -> list[Labels]:
        raise NotImplementedError

    def _remove(self, labels: Labels) -> None:
        raise NotImplementedError


class BulkCounter(_Bulk):
    """A labelled counter (`NAME_total`)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], fold_every: int = FOLD_EVERY
    ) -> None:
        super().__init__(fold_every)
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._totals: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self._append((labels, amount))

    def fold(self) -> None:
        with self._folding:
            for labels, amount in self._take():
                self._totals[labels] = self._totals.get(labels, 0.0) + amount

    def _label_sets(self) -> list[Labels]:
        return list(self._totals)

    def _remove(self, labels: Labels) -> None:
        del self._totals[labels]

    def value(self, labels: Labels) -> float:
        self.fold()
        with self._folding:
            return self._totals.get(labels, 0.0)

    def totals(self) -> list[tuple[Labels, float]]:
        """Every label set's total, everything observed so far folded in."""
        self.fold()
        with self._folding:
            return sorted(self._totals.items())

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, total in self.totals():
            family.add_metric(list(labels), total)
        yield family


class BulkHistogram(_Bulk):
    """A labelled histogram: `observe` takes one value, `observe_many` an array of them."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        bounds: Sequence[float],
        fold_every: int = FOLD_EVERY,
        fold_rows: int = FOLD_ROWS,
    ) -> None:
        super().__init__(fold_every)
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.fold_rows = fold_rows
        self._rows = 0  # values queued in arrays; a threshold only, so a lost update is harmless
        self._bounds = np.array(bounds, dtype=np.float64)
        # The `le` labels exactly as prometheus_client writes them for its own histograms.
        self._les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self._counts: dict[Labels, np.ndarray[Any, np.dtype[np.int64]]] = {}
        self._sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        self._append((labels, value))

    def observe_many(self, labels: Labels, values: np.ndarray[Any, Any]) -> None:
        self._rows += values.size
        self._append((labels, values))
        if self._rows >= self.fold_rows:
            self.fold()

    def fold(self) -> None:
        with self._folding:
            self._rows = 0
            scalars: dict[Labels, list[float]] = {}
            arrays: dict[Labels, list[np.ndarray[Any, Any]]] = {}
            for labels, value in self._take():
                if isinstance(value, np.ndarray):
                    arrays.setdefault(labels, []).append(value.ravel())
                else:
                    scalars.setdefault(labels, []).append(value)
            for labels, values in scalars.items():
                self._add(labels, np.array(values, dtype=np.float64))
            for labels, parts in arrays.items():
                self._add(labels, np.concatenate(parts).astype(np.float64))

    def _add(self, labels: Labels, values: np.ndarray[Any, Any]) -> None:
        # Bucket i counts bounds[i-1] < v <= bounds[i] (Prometheus' `le`); the last one is +Inf.
        slots = self._bounds.searchsorted(values, side="left")
        counts = np.bincount(slots, minlength=self._bounds.size + 1).astype(np.int64)
        total = float(np.add.reduce(values))
        if labels in self._counts:
            self._counts[labels] += counts
            self._sums[labels] += total
        else:
            self._counts[labels] = counts
            self._sums[labels] = total

    def _label_sets(self) -> list[Labels]:
        return list(self._counts)

    def _remove(self, labels: Labels) -> None:
        del self._counts[labels], self._sums[labels]

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    @property
    def les(self) -> list[str]:
        """The `le` label of each bucket, +Inf last."""
        return self._les

    def totals(self) -> list[tuple[Labels, np.ndarray[Any, np.dtype[np.int64]], float]]:
        """Every label set's count per bucket (not cumulative) and sum, all observations in."""
        self.fold()
        with self._folding:
            snapshot = {key: (c.copy(), self._sums[key]) for key, c in self._counts.items()}
        return [(labels, counts, total) for labels, (counts, total) in sorted(snapshot.items())]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, counts, total in self.totals():
            cumulative = np.cumsum(counts).tolist()
            family.add_metric(list(labels), list(zip(self._les, cumulative, strict=True)), total)
        yield family
