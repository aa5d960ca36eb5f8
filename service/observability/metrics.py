"""Prometheus metrics: one registry per app, and the ASGI middleware that times every request.

Both run on every inference request, so the request counters and histograms are the bulk ones of
service/observability/bulk_metrics.py: an append per observation, counted with NumPy in batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability.bulk_metrics import BulkCounter, BulkHistogram
from service.observability.drift import ScoreDrift
from service.observability.shared_metrics import SharedTotals
from service.observability.version_series import VersionSeries

if TYPE_CHECKING:
    from service.inference.runtime import ModelRuntime, ScoreResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_ROW_BUCKETS = tuple(float(2**i) for i in range(14))
_SCORE_BUCKETS = tuple(10.0**e for e in range(-6, 4))  # and +Inf


class Metrics:
    """This process's metrics; with `shared_dir`, the additive ones are merged across processes.

    `registry` holds every metric of this process. With a `shared_dir` (several worker
    processes), the counters, histograms and requests in flight are written there and merged
    from every process's files at scrape (service/observability/shared_metrics.py); the other
    gauges, which describe what this process sees (its loaded versions, its drift window, the
    job store and the model store it reads), come from `process_registry`.
    """

    def __init__(self, shared_dir: Path | None = None, version_ttl_s: float = 600.0) -> None:
        self.registry = CollectorRegistry()
        self.process_registry = CollectorRegistry()
        self.requests = BulkCounter(
            "aeserve_requests",
            "HTTP requests by route, model, version and status.",
            ["route", "method", "model", "version", "status"],
        )
        self.latency = BulkHistogram(
            "aeserve_request_duration_seconds",
            "Request latency by route, model, version and status.",
            ["route", "model", "version", "status"],
            _LATENCY_BUCKETS,
        )
        self.batch_rows = BulkHistogram(
            "aeserve_batch_rows", "Rows per inference request.", ["route", "model"], _ROW_BUCKETS
        )
        self.scores = BulkHistogram(
            "aeserve_scores",
            "Anomaly scores (reconstruction loss) returned.",
            ["model"],
            _SCORE_BUCKETS,
        )
        self.anomalies = BulkCounter("aeserve_anomalies", "Rows flagged as anomalies.", ["model"])
        self.drift = ScoreDrift()
        self.versions = VersionSeries((self.requests, self.latency), version_ttl_s)
        """Forgets the series of versions no longer served; its `served` is set by the app."""
        bulk = (self.requests, self.latency, self.batch_rows, self.scores, self.anomalies)
        for collector in (*bulk, self.drift):
            self.registry.register(collector)
        self.process_registry.register(self.drift)
        self.loaded_version = Gauge(
            "aeserve_model_loaded_version",
            "Version each model is served at by this process.",
            ["model"],
            registry=self.registry,
        )
        self.process_registry.register(self.loaded_version)
        self._recorded: set[str] = set()  # the models `loaded_version` has a value for
        self._recording = threading.Lock()
        self.in_flight = 0
        """Requests being served by this process; only the event loop's thread changes it."""
        in_flight_help = "Requests received and not yet answered (queued or running)."
        Gauge("aeserve_requests_in_flight", in_flight_help, registry=self.registry).set_function(
            lambda: self.in_flight
        )
        self.jobs = Gauge(
            "aeserve_jobs", "Training jobs by status.", ["status"], registry=self.registry
        )
        self.process_registry.register(self.jobs)
        self.store_problem: Callable[[], str | None] = lambda: None
        """Why the repository's object store does not answer, None while it does (set by the
        app's lifespan; a folder repository always answers)."""
        reachable = Gauge(
            "aeserve_model_store_reachable",
            "1 while the model repository answers; 0 while its object store does not and this "
            "process serves from its local copies.",
            registry=self.registry,
        )
        reachable.set_function(lambda: float(self.store_problem() is None))
        self.process_registry.register(reachable)
        self.shared = (
            None
            if shared_dir is None
            else SharedTotals(
                shared_dir,
                [self.requests, self.anomalies],
                [self.latency, self.batch_rows, self.scores],
                {"aeserve_requests_in_flight": (in_flight_help, lambda: float(self.in_flight))},
                self.versions.expire,
            )
        )

    def exposition(self) -> bytes:
        """What /metrics answers, in Prometheus' text format."""
        if self.shared is None:
            self.versions.expire()
            return generate_latest(self.registry)
        return self.shared.exposition() + generate_latest(self.process_registry)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()

    def observe_request(
        self, route: str, method: str, model: str, version: str, status: str, seconds: float
    ) -> None:
        self.requests.inc((route, method, model, version, status))
        self.latency.observe((route, model, version, status), seconds)

    def observe_batch(self, route: str, model: str, rows: int) -> None:
        self.batch_rows.observe((route, model), rows)

    def observe_score_result(self, runtime: ModelRuntime, result: ScoreResult) -> None:
        self.scores.observe_many((runtime.name,), result.scores)
        self.drift.observe(runtime, result.scores)
        flagged = int(np.count_nonzero(result.anomalies))
        if flagged:
            self.anomalies.inc((runtime.name,), flagged)

    def record_loaded(self, runtimes: Iterable[ModelRuntime]) -> None:
        """Set each loaded model's version, then drop the models no longer loaded: a scrape
        running meanwhile never sees the gauge empty, as it did when cleared and refilled."""
        loaded = {runtime.name: runtime.version for runtime in runtimes}
        for name, version in loaded.items():
            self.loaded_version.labels(name).set(version)
        with self._recording:
            for name in self._recorded - loaded.keys():
                self.loaded_version.remove(name)
            self._recorded = set(loaded)


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
        self.metrics.in_flight += 1

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight -= 1
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            state = scope.get("state", {})
            model = str(state.get("model_name", ""))
            version = str(state.get("model_version", ""))
            self.metrics.observe_request(
                route, scope["method"], model, version, str(status), time.perf_counter() - start
            )
