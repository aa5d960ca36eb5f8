"""`aeserve worker`: a Celery worker that trains the jobs of servers run with the celery backend."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from core import preflight
from core.settings import Settings
from service.cli.options import (
    OldRepositoryOption,
    RepositoryOption,
    repository_root,
    setting_default,
)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Jobs trained at once.",
            min=1,
            show_default=setting_default("max_concurrent_jobs"),
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            help="Redis broker and result store.", show_default=setting_default("broker_url")
        ),
    ] = None,
    repository: RepositoryOption = None,
    model_repository: OldRepositoryOption = None,
    name: Annotated[
        str | None, typer.Option(help="Worker name.", show_default="aeserve-PID@HOST")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Celery log level.")] = "info",
) -> None:
    """Train jobs submitted to servers running with AESERVE_JOB_BACKEND=celery."""
    from models.jobs.celery_worker import worker_app

    overrides = {
        "broker_url": broker_url,
        "model_repository": repository_root(repository, model_repository),
    }
    settings = Settings().model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    try:
        preflight.check_worker(settings)
    except preflight.PreflightError as exc:
        typer.echo(f"aeserve worker: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"aeserve worker: publishing into {settings.model_repository}, "
        f"jobs from {settings.broker_url}"
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
