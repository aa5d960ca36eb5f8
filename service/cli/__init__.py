"""The `aeserve` command line: serve, worker, train, import, models, promote, score, and jobs
and datasets against a server."""

from __future__ import annotations

from typing import Annotated

import typer

from core import __version__
from service.cli import importing, remote, scoring, serving, training, worker

app = typer.Typer(
    name="aeserve",
    help="Serve, train and explain autoencoders for anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"aeserve {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Serve, train and explain autoencoders for anomaly detection."""


app.command()(serving.serve)
app.command()(worker.worker)
app.command()(training.train)
app.command("import")(importing.import_model)
app.command()(training.models)
app.command()(training.promote)
app.command()(scoring.score)
app.add_typer(remote.jobs_app, name="jobs")
app.add_typer(remote.datasets_app, name="datasets")
