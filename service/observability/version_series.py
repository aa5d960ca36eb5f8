"""Series of versions no longer served are forgotten, so promotions do not add series forever.

Request counters and latency histograms carry the model version as a label: every version ever
served would otherwise keep its series until the process ends. A (model, version) pair that this
process no longer serves (neither active nor in the registry's cache) is noted when first seen
so, and its series are removed once it has stayed so for `ttl_s`: long enough for Prometheus to
scrape its last values (and for `rate()` over a few minutes to see them), after which the series
simply goes stale there, as a series of a stopped process does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from service.observability.bulk_metrics import BulkCounter, BulkHistogram, Labels

Served = Callable[[], set[tuple[str, str]]]
"""The (model, version) pairs this process serves, versions as their label text."""


class VersionSeries:
    """Which collectors carry `model` and `version` labels, and when each pair stopped being
    served."""

    def __init__(self, collectors: Iterable[BulkCounter | BulkHistogram], ttl_s: float) -> None:
        self.collectors = [c for c in collectors if {"model", "version"} <= set(c.labelnames)]
        self.ttl_s = ttl_s
        self.served: Served | None = None
        """Set once the registry exists (the app's lifespan); until then nothing expires."""
        self._unserved_since: dict[tuple[str, str], float] = {}
        self._expiring = threading.Lock()  # a scrape and the shared files' writer may both call

    def expire(self, now: float | None = None) -> bool:
        """Forget the series of pairs unserved for `ttl_s`; whether any series was removed."""
        if self.served is None:
            return False
        now = time.monotonic() if now is None else now
        with self._expiring:
            return self._expire(self.served(), now)

    def _expire(self, served: set[tuple[str, str]], now: float) -> bool:
        seen = {pair for collector in self.collectors for pair in self._pairs(collector)}
        unserved = {pair for pair in seen if pair[1] and pair not in served}
        since = {pair: self._unserved_since.get(pair, now) for pair in unserved}
        self._unserved_since = since
        old = {pair for pair, at in since.items() if now - at >= self.ttl_s}
        if not old:
            return False
        for collector in self.collectors:
            model, version = _positions(collector)

            def drop(labels: Labels, model: int = model, version: int = version) -> bool:
                return (labels[model], labels[version]) in old

            collector.forget(drop)
        for pair in old:
            del self._unserved_since[pair]
        return True

    @staticmethod
    def _pairs(collector: BulkCounter | BulkHistogram) -> set[tuple[str, str]]:
        model, version = _positions(collector)
        return {(labels[model], labels[version]) for labels in collector.label_sets()}


def _positions(collector: BulkCounter | BulkHistogram) -> tuple[int, int]:
    """Where the `model` and the `version` labels are in the collector's label sets."""
    return collector.labelnames.index("model"), collector.labelnames.index("version")
