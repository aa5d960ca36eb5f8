"""`aeserve train`, `models` and `promote` through typer, as a user types them."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from core.config import TrainConfig
from core.repository import ModelRepository
from service.cli import training

REPO_ROOT = Path(__file__).parents[2]


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(training.train)
    app.command()(training.models)
    app.command()(training.promote)
    return app


@pytest.fixture
def rows(tmp_path: Path, cardio: np.ndarray) -> Path:
    path = tmp_path / "rows.npy"
    np.save(path, cardio[:300])
    return path


def run(cli: typer.Typer, *args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


def test_train_publishes_a_new_version_each_run(
    cli: typer.Typer, rows: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    for expected in (1, 2):
        code, out, _ = run(
            cli, "train", rows, "--name", "demo", "--promote", "--epochs", "3",
            "--repository", root, "--hidden-dims", "12,8", "--latent-dim", "4",
            "--loss", "mse", "--optimizer", "rmsprop", "--seed", "3",
        )  # fmt: skip
        assert code == 0, out
        assert f"published demo version {expected} (active): 3 of 3 epochs, best" in out
        assert f"written to {root.resolve() / 'demo' / str(expected)}\n" in out
    manifest = ModelRepository(root).manifest("demo", 2)
    assert manifest.config["hidden_dims"] == [12, 8]
    assert manifest.config["optimizer"] == "rmsprop"
    assert manifest.config["seed"] == 3


@pytest.mark.parametrize(
    ("flags", "schedule", "rows_per_epoch"),
    [
        ([], "plateau", 10_000),
        (["--learning-rate-schedule", "constant", "--max-rows-per-epoch", "100"], "constant", 100),
        (["--max-rows-per-epoch", "all"], "plateau", None),
    ],
)
def test_schedule_and_rows_per_epoch_reach_the_manifest(
    cli: typer.Typer,
    rows: Path,
    tmp_path: Path,
    flags: list[str],
    schedule: str,
    rows_per_epoch: int | None,
) -> None:
    root = tmp_path / "repo"
    code, out, _ = run(
        cli, "train", rows, "--name", "demo", "--epochs", "1", "--repository", root, *flags
    )
    assert code == 0, out
    config = ModelRepository(root).manifest("demo", 1).config
    assert config["learning_rate_schedule"] == schedule
    assert config["max_rows_per_epoch"] == rows_per_epoch


def test_repository_defaults_to_the_setting(
    cli: typer.Typer, rows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AESERVE_MODEL_REPOSITORY", str(tmp_path / "from-env"))
    code, out, _ = run(cli, "train", rows, "--name", "demo", "--epochs", "1")
    assert code == 0, out
    assert ModelRepository(tmp_path / "from-env").versions("demo") == [1]


def test_models_lists_and_promote_switches(cli: typer.Typer, rows: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for _ in range(2):
        assert (
            run(cli, "train", rows, "--name", "demo", "--epochs", "1", "--repository", root)[0] == 0
        )
    code, out, _ = run(cli, "models", "--repository", root)
    assert code == 0
    assert "demo" in out and "1, 2" in out and "21" in out
    code, out, _ = run(cli, "promote", "demo", "2", "--repository", root)
    assert (code, out.strip()) == (0, f"model demo version 2 is now active in {root.resolve()}")
    assert ModelRepository(root).active_version("demo") == 2


def test_models_on_an_empty_repository(cli: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(cli, "models", "--repository", tmp_path / "empty")
    assert (code, out.strip()) == (0, f"no models in {tmp_path / 'empty'}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.npy"], "error: missing.npy: no such file"),
        (
            ["ROWS", "--latent-dim", "30"],
            "error: latent_dim 30 must be smaller than the 21 input features",
        ),
        (["ROWS", "--hidden-dims", "8,x"], "error: --hidden-dims '8,x' is not a comma-separated"),
        (["ROWS", "--validation-fraction", "1.5"], "error: --validation-fraction: Input should"),
        (["ROWS", "--max-rows-per-epoch", "many"], "error: --max-rows-per-epoch 'many' is neither"),
        (["ROWS", "--max-rows-per-epoch", "0"], "error: --max-rows-per-epoch: Input should be"),
        (["ROWS", "--learning-rate-schedule", "cosine"], "Usage:"),
        (
            ["ROWS", "--loss", "bce", "--scaling", "standard"],
            "error: loss 'bce' needs inputs in [0, 1] after scaling",
        ),
    ],
)
def test_train_errors_exit_2_without_a_traceback(
    cli: typer.Typer, rows: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(rows) if arg == "ROWS" else arg for arg in args]
    code, out, err = run(
        cli, "train", *args, "--name", "demo", "--epochs", "1", "--repository", tmp_path / "repo"
    )
    assert code == 2
    assert err.startswith(message), err
    assert "Traceback" not in out + err


def test_promote_unknown_version(cli: typer.Typer, rows: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    run(cli, "train", rows, "--name", "demo", "--epochs", "1", "--repository", root)
    code, _, err = run(cli, "promote", "demo", "9", "--repository", root)
    assert (code, err.strip()) == (2, "error: model 'demo' has no version 9")


def test_importing_the_commands_does_not_load_torch() -> None:
    code = "import sys, service.cli.training; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_every_config_field_has_a_flag() -> None:
    flags = set(inspect.signature(training.train).parameters)
    assert set(TrainConfig.model_fields) <= flags


def test_first_version_is_active_without_promote_and_later_ones_wait(
    cli: typer.Typer, rows: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    code, out, _ = run(cli, "train", rows, "--name", "demo", "--epochs", "1", "--repository", root)
    assert code == 0, out
    assert "published demo version 1 (active)" in out
    assert "not served yet" not in out
    code, out, _ = run(cli, "train", rows, "--name", "demo", "--epochs", "1", "--repository", root)
    assert code == 0, out
    assert "published demo version 2: 1 of 1 epochs" in out
    assert (
        f"not served yet: `aeserve promote demo 2 --repository {root.resolve()}` makes it the "
        "active version"
    ) in out
    assert ModelRepository(root).active_version("demo") == 1


def test_the_summary_says_when_early_stopping_ended_training(
    cli: typer.Typer, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.npy"  # nothing to learn: the validation loss stops falling at once
    np.save(noise, np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32))
    code, out, _ = run(
        cli, "train", noise, "--name", "noise", "--epochs", "300", "--early-stopping-patience",
        "2", "--repository", tmp_path / "repo",
    )  # fmt: skip
    assert code == 0, out
    epochs_run = ModelRepository(tmp_path / "repo").manifest("noise", 1).training.epochs_run
    assert epochs_run < 300
    assert f"{epochs_run} of 300 epochs (stopped early: no lower val loss for 2 epochs)" in out
