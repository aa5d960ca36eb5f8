"""Checks `aeserve serve` and `aeserve worker` run before they start, with messages that say what
to fix: a crash deep inside startup (sqlite's "unable to open database file") says neither.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.settings import Settings


class PreflightError(Exception):
    """A setting or a folder the process cannot start with; the message says what to change."""


def check_serving(settings: Settings) -> None:
    """What `aeserve serve` checks before uvicorn starts."""
    check_api_key(settings)
    check_repository_writable(settings.local_root)


def check_worker(settings: Settings) -> None:
    """What `aeserve worker` checks before Celery starts."""
    check_repository_writable(settings.local_root)


def check_repository_writable(root: Path) -> None:
    """The model repository (created if missing) must take new files from this process: models,
    uploaded datasets and the job database all live in it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".preflight-"):
            pass
    except OSError as exc:
        raise PreflightError(_unwritable(root, exc)) from None


def check_api_key(settings: Settings) -> None:
    """An empty key would let `Authorization: Bearer ` through; a deployment that requires one
    (AESERVE_REQUIRE_API_KEY, as docker-compose.yml sets) refuses to start without it."""
    key = settings.api_key.get_secret_value().strip() if settings.api_key is not None else None
    if not key and settings.require_api_key:
        raise PreflightError(
            "AESERVE_API_KEY is not set, and this deployment requires one "
            "(AESERVE_REQUIRE_API_KEY): run e.g. `AESERVE_API_KEY=$(openssl rand -hex 24) "
            "docker compose up -d`, or put the key in an .env file beside docker-compose.yml"
        )
    if key == "":
        raise PreflightError(
            "AESERVE_API_KEY is set but empty: give it a secret value, or unset it for an open API"
        )


def _unwritable(root: Path, exc: OSError) -> str:
    uid, gid = os.getuid(), os.getgid()
    try:
        stat = root.stat()
    except OSError:
        owner = ""
    else:
        owner = f" (owner uid {stat.st_uid}, mode {stat.st_mode & 0o777:o})"
    return (
        f"the model repository {root}{owner} is not writable by uid {uid}, which this process "
        f"runs as: {exc.strerror or exc}. Give that uid the folder, e.g. "
        f"`sudo chown -R {uid}:{gid} <host folder>` for a bind mount, or use a named volume"
    )
