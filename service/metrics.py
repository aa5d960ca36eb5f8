"""Prometheus metrics: one registry per app, and the ASGI middleware that times every request.

Both run on every inference request, so they avoid Python work per row or per label lookup: score
histograms are filled with one numpy pass per response, and labelled children are cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from service.runtime import ModelRuntime, ScoreResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_ROW_BUCKETS = tuple(float(2**i) for i in range(14))
_SCORE_BUCKETS = tuple(10.0**e for e in range(-6, 4))  # and +Inf


class ScoreHistogram:
    """`aeserve_scores`: a Prometheus histogram per model, filled a whole batch at a time."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.array(bounds, dtype=np.float64)
        # The `le` labels exactly as prometheus_client writes them for its own histograms.
        self._les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self._counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, values: np.ndarray[Any, Any]) -> None:
        # Bucket i counts bounds[i-1] < v <= bounds[i] (Prometheus' `le`); the last one is +Inf.
        slots = self._bounds.searchsorted(values, side="left")
        counts = np.bincount(slots, minlength=self._bounds.size + 1)
        total = float(np.add.reduce(values, dtype=np.float64))
        with self._lock:
            if model in self._counts:
                self._counts[model] += counts
                self._sums[model] += total
            else:
                self._counts[model] = counts.astype(np.int64)
                self._sums[model] = total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=["model"])

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["model"])
        with self._lock:
            snapshot = {
                model: (counts.copy(), self._sums[model]) for model, counts in self._counts.items()
            }
        for model, (counts, total) in sorted(snapshot.items()):
            cumulative = np.cumsum(counts).tolist()
            family.add_metric([model], list(zip(self._les, cumulative, strict=True)), total)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aeserve_requests",
            "HTTP requests by route, model, version and status.",
            ["route", "method", "model", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aeserve_request_duration_seconds",
            "Request latency by route, model, version and status.",
            ["route", "model", "version", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "aeserve_batch_rows",
            "Rows per inference request.",
            ["route", "model"],
            buckets=_ROW_BUCKETS,
            registry=self.registry,
        )
        self.scores = ScoreHistogram(
            "aeserve_scores", "Anomaly scores (reconstruction loss) returned.", _SCORE_BUCKETS
        )
        self.registry.register(self.scores)
        self.anomalies = Counter(
            "aeserve_anomalies", "Rows flagged as anomalies.", ["model"], registry=self.registry
        )
        self.loaded_version = Gauge(
            "aeserve_model_loaded_version",
            "Version each model is served at by this process.",
            ["model"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "aeserve_jobs", "Training jobs by status.", ["status"], registry=self.registry
        )

        # Labelled children by label values: `labels()` validates and locks on every call.
        self._request_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._batch_children: dict[tuple[str, str], Any] = {}

    def observe_request(
        self, route: str, method: str, model: str, version: str, status: str, seconds: float
    ) -> None:
        key = (route, method, model, version, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, model, version, status),
                self.latency.labels(route, model, version, status),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, route: str, model: str, rows: int) -> None:
        child = self._batch_children.get((route, model))
        if child is None:
            child = self._batch_children[(route, model)] = self.batch_rows.labels(route, model)
        child.observe(rows)

    def observe_score_result(self, model: str, result: ScoreResult) -> None:
        self.scores.observe(model, result.scores)
        flagged = int(np.count_nonzero(result.anomalies))
        if flagged:
            self.anomalies.labels(model).inc(flagged)

    def record_loaded(self, runtimes: Iterable[ModelRuntime]) -> None:
        self.loaded_version.clear()
        for runtime in runtimes:
            self.loaded_version.labels(runtime.name).set(runtime.version)


class MetricsMiddleware:
    """Counts and times each request under its route template, not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            state = scope.get("state", {})
            model = str(state.get("model_name", ""))
            version = str(state.get("model_version", ""))
            self.metrics.observe_request(
                route, scope["method"], model, version, str(status), time.perf_counter() - start
            )
