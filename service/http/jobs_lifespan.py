"""Starting and stopping the job backend with the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from core.settings import Settings
from core.storage import open_datasets
from service.jobs import create_backend
from service.jobs.job_metrics import watch_job_counts
from service.jobs.sweeper import Sweeper
from service.observability.metrics import Metrics


@contextmanager
def training_jobs(app: FastAPI) -> Iterator[None]:
    """Put the backend and the dataset store on `app.state` while the app runs."""
    state = app.state
    settings: Settings = state.settings
    metrics: Metrics = state.metrics
    backend = create_backend(settings)
    backend.start()
    state.jobs = backend
    state.datasets = open_datasets(settings)
    state.datasets.limits = settings.dataset_limits  # uploads beyond them are a 413
    watch_job_counts(metrics.jobs, backend)
    sweeper = Sweeper(backend, state.datasets, settings)
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()
        backend.stop()
