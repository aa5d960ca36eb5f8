"""Prometheus metrics: one registry per app, and the ASGI middleware that times every request."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from service.runtime import ModelRuntime, ScoreResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_ROW_BUCKETS = tuple(float(2**i) for i in range(14))
_SCORE_BUCKETS = (*(10.0**e for e in range(-6, 4)), float("inf"))


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
        self.scores = Histogram(
            "aeserve_scores",
            "Anomaly scores (reconstruction loss) returned.",
            ["model"],
            buckets=_SCORE_BUCKETS,
            registry=self.registry,
        )
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

    def observe_batch(self, route: str, model: str, rows: int) -> None:
        self.batch_rows.labels(route, model).observe(rows)

    def observe_score_result(self, model: str, result: ScoreResult) -> None:
        histogram = self.scores.labels(model)
        for value in result.scores.tolist():
            histogram.observe(value)
        flagged = int(result.anomalies.sum())
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
            labels = (route, model, version, str(status))
            self.metrics.requests.labels(route, scope["method"], model, version, str(status)).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
