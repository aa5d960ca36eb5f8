"""`aeserve worker`: a Celery worker that trains the jobs of servers run with the celery backend."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from core.settings import Settings


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Jobs trained at once (default AESERVE_MAX_CONCURRENT_JOBS).", min=1),
    ] = None,
    broker_url: Annotated[
        str | None, typer.Option(help="Redis broker and result store (AESERVE_BROKER_URL).")
    ] = None,
    model_repository: Annotated[
        Path | None,
        typer.Option(help="Model repository shared with the servers (AESERVE_MODEL_REPOSITORY)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
    log_level: Annotated[str, typer.Option(help="Celery log level.")] = "info",
) -> None:
    """Train jobs submitted to servers running with AESERVE_JOB_BACKEND=celery."""
    from models.jobs.celery_worker import worker_app

    overrides = {"broker_url": broker_url, "model_repository": model_repository}
    settings = Settings().model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    app = worker_app(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency or settings.max_concurrent_jobs}",
            "--pool=prefork",
            f"--loglevel={log_level}",
            f"--hostname={name or f'aeserve-{os.getpid()}@{socket.gethostname()}'}",
            # Jobs need no gossip between workers: their coordination is in the job index.
            "--without-gossip",
            "--without-mingle",
        ]
    )
