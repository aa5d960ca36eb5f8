"""`aeserve serve`: uvicorn running the app factory in one or more worker processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from core.settings import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (AESERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (AESERVE_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes; each serves and reloads.")
    ] = None,
    model_repository: Annotated[
        Path | None, typer.Option(help="Model repository folder (AESERVE_MODEL_REPOSITORY).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the models of the repository over HTTP."""
    import uvicorn

    # Worker processes build their own Settings from the environment, so flags travel through it.
    overrides = {
        "HOST": host,
        "PORT": port,
        "WORKERS": workers,
        "MODEL_REPOSITORY": model_repository,
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"AESERVE_{key}"] = str(value)
    settings = Settings()
    uvicorn.run(
        "service.main:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        access_log=False,
        proxy_headers=True,
    )
