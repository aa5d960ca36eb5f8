"""`aeserve train`, `aeserve models` and `aeserve promote`.

torch is imported inside `train` only, so that `aeserve serve` and the other commands never load it;
rich's progress bar and table inside the commands that show them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from core.config import (
    Activation,
    Device,
    Loss,
    Optimizer,
    OutputActivation,
    ScalingMethod,
    Schedule,
    Score,
    TrainConfig,
)
from core.errors import AeserveError
from core.repository import Repository, check_name
from core.settings import Settings
from core.storage import open_repository
from service.cli.options import RepositoryOption, repository_root
from service.cli.output import console, error_console, escape

if TYPE_CHECKING:
    from rich.progress import TaskID


def _about(field: str) -> str:
    """The CLI help of a config flag is the config field's own description."""
    return TrainConfig.model_fields[field].description or ""


_DEFAULTS = TrainConfig()


def _flag(field: str, **options: Any) -> Any:
    """A typer option for a config field: its description as help, its default shown (a None
    default is derived from the data)."""
    derived = TrainConfig.model_fields[field].default is None
    return typer.Option(
        help=_about(field), show_default="derived from the data" if derived else True, **options
    )


def train(
    data: Annotated[
        str,
        typer.Argument(
            help="Training rows: a .csv, .npy, .npz or .parquet file, or builtin:digits."
        ),
    ],
    name: Annotated[str, typer.Option(help="Model name; an existing model gets a new version.")],
    promote: Annotated[
        bool,
        typer.Option(
            help="Make the new version the active one. A model's first version always is."
        ),
    ] = False,
    repository: RepositoryOption = None,
    if_empty: Annotated[
        bool,
        typer.Option(
            "--if-empty",
            help="Train only if the repository has no model yet, else do nothing "
            "(docker-compose.yml's first-run `default-model` service).",
        ),
    ] = False,
    hidden_dims: Annotated[str | None, _flag("hidden_dims", metavar="W1,W2,…")] = None,
    latent_dim: Annotated[int | None, _flag("latent_dim")] = None,
    activation: Annotated[Activation, _flag("activation")] = _DEFAULTS.activation,
    output_activation: Annotated[
        OutputActivation, _flag("output_activation")
    ] = _DEFAULTS.output_activation,
    loss: Annotated[Loss, _flag("loss")] = _DEFAULTS.loss,
    optimizer: Annotated[Optimizer, _flag("optimizer")] = _DEFAULTS.optimizer,
    learning_rate: Annotated[float, _flag("learning_rate")] = _DEFAULTS.learning_rate,
    learning_rate_schedule: Annotated[
        Schedule, _flag("learning_rate_schedule")
    ] = _DEFAULTS.learning_rate_schedule,
    weight_decay: Annotated[float, _flag("weight_decay")] = _DEFAULTS.weight_decay,
    epochs: Annotated[int, _flag("epochs")] = _DEFAULTS.epochs,
    batch_size: Annotated[int, _flag("batch_size")] = _DEFAULTS.batch_size,
    max_rows_per_epoch: Annotated[
        str | None,
        typer.Option(
            help=_about("max_rows_per_epoch") + " Give 'all' for None.",
            show_default=str(_DEFAULTS.max_rows_per_epoch),
            metavar="N|all",
        ),
    ] = None,
    validation_fraction: Annotated[
        float, _flag("validation_fraction")
    ] = _DEFAULTS.validation_fraction,
    early_stopping_patience: Annotated[
        int, _flag("early_stopping_patience")
    ] = _DEFAULTS.early_stopping_patience,
    scaling: Annotated[ScalingMethod, _flag("scaling")] = _DEFAULTS.scaling,
    threshold_quantile: Annotated[
        float, _flag("threshold_quantile")
    ] = _DEFAULTS.threshold_quantile,
    score: Annotated[Score, _flag("score")] = _DEFAULTS.score,
    seed: Annotated[int, _flag("seed")] = _DEFAULTS.seed,
    device: Annotated[Device, _flag("device")] = _DEFAULTS.device,
) -> None:
    """Train an autoencoder on DATA and publish it as the next version of NAME."""
    if if_empty:
        existing = _repository(repository).names()
        if existing:
            console().print(
                f"not trained: the repository has models already ({', '.join(existing)})"
            )
            return
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
        "score": score,
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
        from core.data import load_table
        from models.pipeline import train_and_publish

        table = load_table(data)
        store = _repository(repository)
        with _progress_bar() as report:
            published = train_and_publish(
                table.array,
                name,
                config,
                store,
                promote=promote,
                feature_names=table.feature_names,
                progress=report,
            )

    training = published.manifest.training
    assert training is not None  # a trained version has its summary
    epochs_run = training.epochs_run
    active = store.active_version(name) == published.version
    stopped = (
        f" (stopped early: no lower val loss for {_epochs(config.early_stopping_patience)})"
        if epochs_run < config.epochs
        else ""
    )
    console().print(
        f"published [bold]{escape(name)}[/bold] version {published.version}"
        f"{' (active)' if active else ''}: {epochs_run} of {config.epochs} epochs{stopped}, "
        f"best epoch {training.best_epoch}, val loss {training.val_loss:.4g}, "
        f"threshold {published.manifest.threshold:.4g}"
    )
    console().print(f"written to {escape(store.version_location(name, published.version))}")
    if not active:
        console().print(
            f"not served yet: `aeserve promote {escape(name)} {published.version}"
            f" --repository {escape(store.location)}` makes it the active version"
        )


def models(repository: RepositoryOption = None) -> None:
    """List the models in the repository with their versions and dimensions."""
    store = _repository(repository)
    names = store.names()
    if not names:
        console().print(f"no models in {escape(store.location)}")
        return
    from rich.table import Table

    table = Table("name", "versions", "active", "input dim", "latent dim")
    with _user_errors():
        for name in names:
            versions = store.versions(name)
            active = store.active_version(name)
            shown = active if active is not None else (versions[-1] if versions else None)
            manifest = store.manifest(name, shown) if shown is not None else None
            table.add_row(
                name,
                ", ".join(map(str, versions)) or "-",
                str(active) if active is not None else "-",
                str(manifest.input_dim) if manifest else "-",
                str(manifest.latent_dim) if manifest else "-",
            )
    console().print(table)


def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to make active.")],
    repository: RepositoryOption = None,
) -> None:
    """Make VERSION the active version of NAME; servers switch to it within seconds."""
    with _user_errors():
        store = _repository(repository)
        store.promote(name, version)
    console().print(
        f"model [bold]{escape(name)}[/bold] version {version} is now active "
        f"in {escape(store.location)}"
    )


def _epochs(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def _repository(root: str | None) -> Repository:
    return open_repository(Settings(model_repository=repository_root(root)))


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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  train {task.fields[train]}  val {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
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
    error_console().print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)
