"""Training jobs: submitted over HTTP, trained in other processes, reported back.

The API process imports this package but never torch: training happens in a local process
(`local`) or a Celery worker (`celery`), which import `models` when they run a job.
"""

from __future__ import annotations

from core.settings import Settings
from service.jobs.backend import JobBackend


def create_backend(settings: Settings) -> JobBackend:
    if settings.job_backend == "celery":
        from service.jobs.celery.backend import CeleryBackend

        return CeleryBackend(settings)
    from service.jobs.local.backend import LocalBackend

    return LocalBackend(settings)
