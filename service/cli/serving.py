"""`aeserve serve`: uvicorn running the app factory in one or more worker processes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind.", show_default=setting_default("host")),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port.", show_default=setting_default("port"))
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes; each serves and reloads.",
            show_default=setting_default("workers"),
        ),
    ] = None,
    repository: RepositoryOption = None,
    model_repository: OldRepositoryOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the models of the repository over HTTP."""
    # Worker processes build their own Settings from the environment, so flags travel through it.
    overrides = {
        "HOST": host,
        "PORT": port,
        "WORKERS": workers,
        "MODEL_REPOSITORY": repository_root(repository, model_repository),
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"AESERVE_{key}"] = str(value)
    settings = Settings()
    try:
        preflight.check_serving(settings)
    except preflight.PreflightError as exc:
        typer.echo(f"aeserve serve: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(startup_line(settings.model_repository, settings.host, settings.port))
    with shared_metrics_dir(settings):
        _run(settings, log_level)


@contextmanager
def shared_metrics_dir(settings: Settings) -> Iterator[None]:
    """With several workers, a folder where their metrics add up (service/observability/
    shared_metrics.py): the one set, emptied of an earlier run's files, or a fresh one."""
    if settings.metrics_dir is not None:
        from service.observability.shared_metrics import clear

        clear(settings.metrics_dir)
        yield
        return
    if settings.workers == 1:
        yield  # one process: metrics from memory
        return
    with tempfile.TemporaryDirectory(prefix="aeserve-metrics-") as folder:
        os.environ["AESERVE_METRICS_DIR"] = folder  # the workers build their Settings from it
        try:
            yield
        finally:
            del os.environ["AESERVE_METRICS_DIR"]


def _run(settings: Settings, log_level: str) -> None:
    import uvicorn

    from service.http import connections

    uvicorn.run(
        "service.main:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        access_log=False,
        proxy_headers=True,
        http=connections.protocol_path(),  # header and body timeouts (service/http/connections.py)
        ws="none",  # no route is a WebSocket: spares each process importing the websockets package
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_concurrency,
    )


def startup_line(repository: str | Path, host: str, port: int) -> str:
    """Where the models come from and where a browser finds the interactive docs."""
    reachable = "localhost" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{f'[{reachable}]' if ':' in reachable else reachable}:{port}"
    return f"aeserve: serving {repository} on {base} (interactive docs: {base}/docs)"
