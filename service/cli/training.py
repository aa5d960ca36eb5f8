"""`aeserve train`, `aeserve models` and `aeserve promote`.

torch is imported inside `train` only, so that `aeserve serve` and the other commands never load it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from core.config import (
    Activation,
    Device,
    Loss,
    Optimizer,
    OutputActivation,
    ScalingMethod,
    Schedule,
    TrainConfig,
)
from core.errors import AeserveError
from core.repository import ModelRepository, check_name
from core.settings import Settings

# Soft wrap: messages stay on one line, so they can be grepped and copied whole.
console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)


def _about(field: str) -> str:
    """The CLI help of a config flag is the config field's own description."""
    return TrainConfig.model_fields[field].description or ""


RepositoryOption = Annotated[
    Path | None,
    typer.Option(help="Model repository folder (default: $AESERVE_MODEL_REPOSITORY)."),
]


def train(
    data: Annotated[
        str,
        typer.Argument(
            help="Training rows: a .csv, .npy, .npz or .parquet file, or builtin:digits."
        ),
    ],
    name: Annotated[str, typer.Option(help="Model name; an existing model gets a new version.")],
    promote: Annotated[bool, typer.Option(help="Make the new version the active one.")] = False,
    repository: RepositoryOption = None,
    hidden_dims: Annotated[
        str | None, typer.Option(help=_about("hidden_dims"), metavar="W1,W2,…")
    ] = None,
    latent_dim: Annotated[int | None, typer.Option(help=_about("latent_dim"))] = None,
    activation: Annotated[Activation | None, typer.Option(help=_about("activation"))] = None,
    output_activation: Annotated[
        OutputActivation | None, typer.Option(help=_about("output_activation"))
    ] = None,
    loss: Annotated[Loss | None, typer.Option(help=_about("loss"))] = None,
    optimizer: Annotated[Optimizer | None, typer.Option(help=_about("optimizer"))] = None,
    learning_rate: Annotated[float | None, typer.Option(help=_about("learning_rate"))] = None,
    learning_rate_schedule: Annotated[
        Schedule | None, typer.Option(help=_about("learning_rate_schedule"))
    ] = None,
    weight_decay: Annotated[float | None, typer.Option(help=_about("weight_decay"))] = None,
    epochs: Annotated[int | None, typer.Option(help=_about("epochs"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_about("batch_size"))] = None,
    max_rows_per_epoch: Annotated[
        str | None,
        typer.Option(help=_about("max_rows_per_epoch") + " Give 'all' for None.", metavar="N|all"),
    ] = None,
    validation_fraction: Annotated[
        float | None, typer.Option(help=_about("validation_fraction"))
    ] = None,
    early_stopping_patience: Annotated[
        int | None, typer.Option(help=_about("early_stopping_patience"))
    ] = None,
    scaling: Annotated[ScalingMethod | None, typer.Option(help=_about("scaling"))] = None,
    threshold_quantile: Annotated[
        float | None, typer.Option(help=_about("threshold_quantile"))
    ] = None,
    seed: Annotated[int | None, typer.Option(help=_about("seed"))] = None,
    device: Annotated[Device | None, typer.Option(help=_about("device"))] = None,
) -> None:
    """Train an autoencoder on DATA and publish it as the next version of NAME."""
    given: dict[str, object] = {
        "latent_dim": latent_dim,
        "activation": activation,
        "output_activation": output_activation,
        "loss": loss,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "learning_rate_schedule": learning_rate_schedule,
        "weight_decay": weight_decay,
        "epochs": epochs,
        "batch_size": batch_size,
        "validation_fraction": validation_fraction,
        "early_stopping_patience": early_stopping_patience,
        "scaling": scaling,
        "threshold_quantile": threshold_quantile,
        "seed": seed,
        "device": device,
    }
    with _user_errors():
        check_name(name)
        if hidden_dims is not None:
            given["hidden_dims"] = _parse_widths(hidden_dims)
        chosen = {key: value for key, value in given.items() if value is not None}
        if max_rows_per_epoch is not None:  # "all" sets the field to None, unlike leaving it out
            chosen["max_rows_per_epoch"] = _parse_rows(max_rows_per_epoch)
        config = TrainConfig.model_validate(chosen)
        from core.data import load_array
        from models.pipeline import train_and_publish

        rows = load_array(data)
        store = _repository(repository)
        with _progress_bar() as report:
            published = train_and_publish(
                rows, name, config, store, promote=promote, progress=report
            )

    training = published.manifest["training"]
    active = store.active_version(name) == published.version
    console.print(
        f"published [bold]{escape(name)}[/bold] version {published.version}"
        f"{' (active)' if active else ''}: {training['epochs_run']} epochs, best epoch "
        f"{training['best_epoch']}, val loss {training['val_loss']:.4g}, "
        f"threshold {published.manifest['threshold']:.4g}"
    )


def models(repository: RepositoryOption = None) -> None:
    """List the models in the repository with their versions and dimensions."""
    store = _repository(repository)
    names = store.names()
    if not names:
        console.print(f"no models in {escape(str(store.root))}")
        return
    table = Table("name", "versions", "active", "input dim", "latent dim")
    with _user_errors():
        for name in names:
            versions = store.versions(name)
            active = store.active_version(name)
            shown = active if active is not None else (versions[-1] if versions else None)
            manifest = store.manifest(name, shown) if shown is not None else {}
            table.add_row(
                name,
                ", ".join(map(str, versions)) or "-",
                str(active) if active is not None else "-",
                str(manifest.get("input_dim", "-")),
                str(manifest.get("latent_dim", "-")),
            )
    console.print(table)


def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to make active.")],
    repository: RepositoryOption = None,
) -> None:
    """Make VERSION the active version of NAME; servers switch to it within seconds."""
    with _user_errors():
        _repository(repository).promote(name, version)
    console.print(f"model [bold]{escape(name)}[/bold] version {version} is now active")


def _repository(root: Path | None) -> ModelRepository:
    return ModelRepository(root if root is not None else Settings().model_repository)


def _parse_widths(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"--hidden-dims {text!r} is not a comma-separated list of widths, e.g. 256,64"
        ) from None


def _parse_rows(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"--max-rows-per-epoch {text!r} is neither a number of rows nor 'all'"
        ) from None


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, float, float], None]]:
    """A bar that appears with the first epoch, so errors found before training show alone."""
    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  train {task.fields[train]}  val {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    tasks: list[TaskID] = []

    def report(epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task("training", total=epochs, train="-", val="-"))
        bar.update(tasks[0], completed=epoch, train=f"{train_loss:.4g}", val=f"{val_loss:.4g}")

    try:
        yield report
    finally:
        if tasks:
            bar.stop()


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Bad data, configs and repository errors end the command with a message, not a traceback."""
    try:
        yield
    except ValidationError as exc:
        _fail("; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()))
    except AeserveError as exc:
        _fail(exc.message)
    except ValueError as exc:  # DataError, ConfigError, TrainingDiverged and friends
        _fail(str(exc))


def _field(location: tuple[int | str, ...]) -> str:
    return "--" + ".".join(map(str, location)).replace("_", "-")


def _fail(message: str) -> NoReturn:
    error_console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)
