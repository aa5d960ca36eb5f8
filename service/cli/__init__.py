"""The `aeserve` command line: serve, worker, train, models, promote."""

from __future__ import annotations

import typer

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


from service.cli import serving  # noqa: E402

app.command()(serving.serve)
