"""The `aeserve` command line: serve, worker, train, models, promote."""

from __future__ import annotations

import typer

from service.cli import serving, training, worker

app = typer.Typer(
    name="aeserve",
    help="Serve, train and explain autoencoders for anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Serve, train and explain autoencoders for anomaly detection."""


app.command()(serving.serve)
app.command()(worker.worker)
app.command()(training.train)
app.command()(training.models)
app.command()(training.promote)
