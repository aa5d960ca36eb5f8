"""`aeserve jobs` and `aeserve datasets`: a running server's jobs and datasets, through the
Python client (service/client). The server is `--url` or $AESERVE_URL; the key $AESERVE_API_KEY."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.output import console, error_console, escape

if TYPE_CHECKING:
    from core.jobs.records import JobRecord
    from service.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"
"""The client's default (service/client/sync.py; a test holds them equal), spelled here so that
the client and httpx are imported by these commands only, not by `aeserve serve`."""

jobs_app = typer.Typer(
    help="Training and import jobs of a running server: list, show, follow, cancel.",
    no_args_is_help=True,
)
datasets_app = typer.Typer(
    help="Datasets stored on a running server: list, upload, delete.", no_args_is_help=True
)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="AESERVE_URL", help="The server.", show_default=True),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="AESERVE_API_KEY",
        help="The server's API key.",
        show_default="$AESERVE_API_KEY",
    ),
]


@contextlib.contextmanager
def _client(url: str, api_key: str | None) -> Iterator[Client]:
    """A client whose failures end the command with the server's words, not a traceback."""
    import httpx

    from service.client import ApiError, Client

    try:
        with Client(url, api_key=api_key) as client:
            yield client
    except ApiError as exc:
        error_console().print(f"[red]error:[/red] {exc.status}: {escape(exc.detail)}")
        raise typer.Exit(2) from None
    except httpx.TransportError as exc:
        error_console().print(f"[red]error:[/red] cannot reach {escape(url)}: {escape(str(exc))}")
        raise typer.Exit(2) from None


def _job_row(job: JobRecord) -> list[str]:
    progress = f"{job.progress.epoch}/{job.progress.epochs}" if job.kind == "train" else "-"
    result = f"v{job.result.model.version}" if job.result else (job.error or "")
    return [
        job.job_id,
        job.kind,
        job.name,
        job.status,
        progress,
        job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        result,
    ]


@jobs_app.command("list")
def list_jobs(
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most jobs, newest first.")] = 20,
) -> None:
    """Jobs, newest first."""
    with _client(url, api_key) as client:
        jobs = client.jobs(limit)
    if not jobs:
        console().print(f"no jobs on {escape(url)}")
        return
    from rich.table import Table

    table = Table("job", "kind", "model", "status", "epoch", "created (UTC)", "result")
    for job in jobs:
        table.add_row(*(escape(cell) for cell in _job_row(job)))
    console().print(table)


@jobs_app.command("show")
def show_job(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """A job's whole record, as JSON."""
    with _client(url, api_key) as client:
        record = client.job(job_id)
    console().print_json(record.model_dump_json())


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Cancel a queued or running job; it publishes nothing."""
    with _client(url, api_key) as client:
        record = client.cancel_job(job_id)
    console().print(f"job {escape(job_id)} on {escape(url)}: {record.status}")


@jobs_app.command("follow")
def follow_job(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Follow a job's epochs as they come, until it ends; exit 1 unless it succeeded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  train {task.fields[train]}  val {task.fields[val]}"),
        TimeElapsedColumn(),
        console=console(),
    )
    record: JobRecord | None = None
    with _client(url, api_key) as client, bar:
        task = None
        for event in client.events(job_id):
            if event.progress is not None:
                p = event.progress
                if task is None:
                    task = bar.add_task("training", total=p.epochs, train="-", val="-")
                bar.update(
                    task,
                    completed=p.epoch,
                    train=f"{p.train_loss:.4g}" if p.train_loss is not None else "-",
                    val=f"{p.val_loss:.4g}" if p.val_loss is not None else "-",
                )
            record = event.record or record
        if record is None:
            record = client.job(job_id)
    if record.status == "succeeded" and record.result is not None:
        model = record.result.model
        active = " (active)" if record.result.promoted else ""
        console().print(
            f"job {escape(job_id)} succeeded: {escape(model.name)} version {model.version}"
            f"{active} on {escape(url)}"
        )
        return
    why = f": {escape(record.error)}" if record.error else ""
    console().print(f"job {escape(job_id)} {record.status}{why}")
    raise typer.Exit(1)


@datasets_app.command("list")
def list_datasets(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None) -> None:
    """Stored datasets, newest first."""
    with _client(url, api_key) as client:
        datasets = client.datasets()
    if not datasets:
        console().print(f"no datasets on {escape(url)}")
        return
    from rich.table import Table

    table = Table("dataset", "rows", "dim", "file", "uploaded (UTC)", "features")
    for d in datasets:
        names = d.feature_names or []
        table.add_row(
            d.dataset,
            str(d.rows),
            str(d.dim),
            escape(d.filename or "-"),
            d.uploaded_at.strftime("%Y-%m-%d %H:%M:%S") if d.uploaded_at else "-",
            escape(", ".join(names[:4]) + (", …" if len(names) > 4 else "")) or "-",
        )
    console().print(table)


@datasets_app.command("upload")
def upload_dataset(
    file: Annotated[
        Path,
        typer.Argument(help="A .csv, .npy, .npz or .parquet file.", exists=True, dir_okay=False),
    ],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Store FILE on the server; train on it with POST /train `{"data": {"dataset": ID}}`."""
    with _client(url, api_key) as client:
        info = client.upload_dataset(file)
    console().print(
        f"uploaded {escape(str(file))} to {escape(url)} as dataset {info.dataset}: "
        f"{info.rows} rows × {info.dim} features"
    )


@datasets_app.command("delete")
def delete_dataset(
    dataset: Annotated[str, typer.Argument(help="The dataset's id.")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Remove a dataset from the server (refused while a job trains on it)."""
    with _client(url, api_key) as client:
        client.delete_dataset(dataset)
    console().print(f"deleted dataset {escape(dataset)} from {escape(url)}")
