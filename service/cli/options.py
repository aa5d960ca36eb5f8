"""What the commands share: the one spelling of `--repository`, defaults as `--help` shows them,
and the repository folder each command works in, as an absolute path a user can check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.object_store import is_store_url
from core.settings import Settings


def setting_default(field: str) -> str:
    """How `--help` shows a flag that falls back to a setting: its default and its variable."""
    return f"{Settings.model_fields[field].default} or $AESERVE_{field.upper()}"


RepositoryOption = Annotated[
    str | None,
    typer.Option(
        "--repository",
        help="Model repository: a folder `<name>/<version>/…`, or s3://bucket/prefix.",
        show_default=setting_default("model_repository"),
    ),
]
OldRepositoryOption = Annotated[
    str | None, typer.Option("--model-repository", hidden=True, help="Old name of --repository.")
]
"""`aeserve serve` and `aeserve worker` spelled it `--model-repository` before; still taken."""


def repository_root(given: str | None, old_spelling: str | None = None) -> str:
    """The repository a command works in: the flag, else AESERVE_MODEL_REPOSITORY; a folder as
    an absolute path, an `s3://` URL as it is."""
    chosen = given if given is not None else old_spelling
    root = chosen if chosen is not None else Settings().model_repository
    return root if is_store_url(root) else str(Path(root).expanduser().resolve())
