"""The Celery application shared by API processes (which send) and workers (which train)."""

from __future__ import annotations

from celery import Celery

TRAIN_TASK = "aeserve.train"
QUEUE = "aeserve.training"


def make_celery(broker_url: str, result_expires_s: float | None = None) -> Celery:
    """`result_expires_s`: a task's result is removed this long after it was last written
    (Redis key expiry; None keeps it)."""
    app = Celery("aeserve", broker=broker_url, backend=broker_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        # A worker takes a message only when a process is free to train it, so `--concurrency`
        # is the limit and jobs start in submission order across workers.
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        # A worker killed mid-job must not hand the job to another worker: training twice would
        # publish twice. The job is failed instead (heartbeat, WorkerLostError).
        task_reject_on_worker_lost=False,
        # The task reports PROGRESS itself, after its first heartbeat; a STARTED state without a
        # heartbeat would look like a dead worker.
        task_track_started=False,
        result_expires=None if result_expires_s is None else round(result_expires_s),
        result_extended=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app
