"""`create_app(settings)`: the FastAPI application, its lifespan and its middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool

from core import __version__, heap
from core.settings import Settings
from core.storage import open_repository
from service.http import error_handlers as handlers
from service.http import openapi
from service.http.admission import InferenceAdmission
from service.http.body_limit import BodySizeLimit
from service.http.fastlane import InferenceFastLane
from service.http.jobs_lifespan import training_jobs
from service.http.offload import DecodingProcesses, decoding_limiter
from service.http.routes import (
    datasets,
    docs,
    health,
    imports,
    inference,
    jobs,
    models,
    scores,
    ui,
    v2,
)
from service.inference.options import RuntimeOptions
from service.inference.registry import ModelRegistry
from service.observability.metrics import Metrics, MetricsMiddleware

log = logging.getLogger("aeserve")

DESCRIPTION = """Serve, train and explain autoencoders for anomaly detection.

Send rows as JSON (`{"vectors": [[…], …]}`) or as a `.npy` body (`Content-Type: application/x-npy`);
ask for `.npy` answers with `Accept: application/x-npy`. Pick a model with `?model=&version=`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    repository = open_repository(settings)
    app.state.metrics.store_problem = repository.unreachable
    registry = ModelRegistry(
        repository,
        RuntimeOptions.from_settings(settings),
        settings.default_model,
        cache_idle_s=settings.cached_version_idle_s or None,
    )
    heap.configure()  # before the first version's sessions allocate (core/heap.py)
    await run_in_threadpool(repository.sweep_staging)
    await run_in_threadpool(registry.load_all)
    registry.start_watching(settings.reload_interval_s)
    trimmer = heap.Trimmer(settings.heap_trim_interval_s)
    trimmer.start()
    app.state.repository = repository
    app.state.registry = registry
    app.state.metrics.versions.served = registry.served_versions
    log.info(
        "serving %s",
        ", ".join(f"{r.name} v{r.version}" for r in registry.loaded()) or "no models yet",
    )
    try:
        with training_jobs(app):
            yield
    finally:
        trimmer.stop()
        registry.stop_watching()
        app.state.metrics.close()
        if app.state.decoding_processes is not None:
            app.state.decoding_processes.close()


def _telemetry(settings: Settings) -> TelemetryConfig:
    on = settings.opentelemetry
    return {"tracing": on, "metrics": on, "logs": on}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="aeserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=_telemetry(settings),
        docs_url=None,  # served by routes/docs.py from packaged assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    # Shared by the workers when metrics_dir is set.
    app.state.metrics = Metrics(settings.metrics_dir, settings.metrics_version_ttl_s)
    app.state.decoding = decoding_limiter(settings.decode_threads)  # large bodies, off the loop
    processes = settings.decode_processes
    app.state.decoding_processes = DecodingProcesses(processes) if processes else None
    handlers.install(app)
    app.include_router(inference.router)
    app.include_router(models.router)
    app.include_router(scores.router)
    app.include_router(jobs.router)
    app.include_router(datasets.router)
    app.include_router(imports.router)
    app.include_router(health.router)
    app.include_router(v2.router)
    openapi.install(app)  # request examples as wide as the default model's rows
    docs.install(app)
    ui.install(app)
    # Middleware added later wraps what was added before: the fast lane first, so it is the
    # innermost and every middleware added after it applies to its requests too.
    if settings.inference_fast_lane:
        app.add_middleware(InferenceFastLane, fastapi=app)
    # Inside the metrics, so that the requests it refuses are counted.
    target_ms = settings.inference_latency_target_ms
    app.add_middleware(
        InferenceAdmission,
        limit=settings.max_inference_in_progress,
        latency_target_s=None if target_ms is None else target_ms / 1000,
    )
    # Oversized bodies are refused before anything reads them, and inside the metrics, so that
    # a 413 is counted as one, whether the Content-Length or the bytes counted went over.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
