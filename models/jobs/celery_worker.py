"""The training task, as Celery workers run it (`aeserve worker`).

A job that fails is a task that ran to completion: its outcome (succeeded, failed, cancelled) is
the task's return value, with the reason in words. A FAILURE state means the task itself broke,
e.g. WorkerLostError when its process was killed.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore

from core.jobs.celery_app import TRAIN_TASK, make_celery
from core.jobs.celery_index import JobIndex
from core.jobs.records import INTERRUPTED, EpochLoss, Fate, JobProgress, JobSpec, utc_now
from core.settings import Settings
from core.storage import open_datasets, open_repository
from models.jobs.running import JobHooks, run_job
from models.jobs.watchdog import Watchdog


class CeleryHooks(JobHooks):
    """Progress goes to the result store as PROGRESS meta; the fate lives in the job index."""

    def __init__(
        self, task: Task, index: JobIndex, job_id: str, spec: JobSpec, watchdog: Watchdog
    ) -> None:
        super().__init__(watchdog)
        self.task = task
        self.index = index
        self.job_id = job_id
        self.report: dict[str, Any] = {
            "started_at": utc_now().isoformat(),
            "progress": JobProgress(epochs=spec.epochs).model_dump(),
            "history": [],
        }

    def record_epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        self.report["progress"] = JobProgress(
            epoch=epoch, epochs=epochs, train_loss=train_loss, val_loss=val_loss
        ).model_dump()
        entry = EpochLoss(epoch=epoch, train_loss=train_loss, val_loss=val_loss)
        self.report["history"].append(entry.model_dump())
        self.publish_progress()

    def publish_progress(self) -> None:
        self.task.update_state(task_id=self.job_id, state="PROGRESS", meta=self.report)

    def fate(self) -> Fate | None:
        return self.index.fate(self.job_id)

    def seal(self, fate: Fate) -> Fate | None:
        return self.index.seal(self.job_id, fate)


def train(task: Task, settings: Settings, job_id: str, spec: JobSpec) -> dict[str, Any]:
    index = JobIndex.from_url(settings.broker_url, settings.job_heartbeat_timeout_s)
    if index.fate(job_id) is not None:
        raise Ignore()  # cancelled before a worker got to it; the index says so already
    delivery = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not index.claim_start(job_id, delivery):
        # The message came again after the worker that started it died: never train twice.
        if not index.alive(job_id) and index.seal(job_id, "lost") != "cancelled":
            index.close(job_id, "failed", INTERRUPTED)
        raise Ignore()
    interval_s = min(1.0, settings.job_heartbeat_timeout_s / 5)
    watchdog = Watchdog(lambda: index.heartbeat(job_id), interval_s)
    watchdog.start()  # the first beat comes before the PROGRESS state that asks for beats
    hooks = CeleryHooks(task, index, job_id, spec, watchdog)
    try:
        hooks.publish_progress()
        repository = open_repository(settings)
        outcome = run_job(spec, repository, open_datasets(settings), hooks)
    finally:
        watchdog.stop()
        index.client.close()
    return {**hooks.report, **outcome.model_dump(mode="json"), "finished_at": utc_now().isoformat()}


def worker_app(settings: Settings) -> Celery:
    """The Celery app with the training task registered, bound to these settings."""
    app = make_celery(settings.broker_url, settings.job_retention_s)

    @app.task(name=TRAIN_TASK, bind=True)  # type: ignore[untyped-decorator]
    def train_task(self: Task, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        return train(self, settings, job_id, JobSpec.model_validate(spec))

    return app
