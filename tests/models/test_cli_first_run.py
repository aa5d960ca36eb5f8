"""`aeserve train --if-empty`: how docker-compose.yml's one-shot `default-model` service trains
the default model on a first `up` and leaves a repository with models alone on every later one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from core.repository import ModelRepository
from service.cli import training


def run(*args: str | Path) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(training.train)
    app.command()(training.models)
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.stdout


def test_trains_into_an_empty_repository_only(tmp_path: Path, cardio: np.ndarray) -> None:
    rows = tmp_path / "rows.npy"
    np.save(rows, cardio[:200])
    root = tmp_path / "repository"
    first = ["train", rows, "--name", "first", "--epochs", "2", "--repository", root, "--if-empty"]
    code, out = run(*first)
    assert code == 0, out
    assert ModelRepository(root).names() == ["first"]
    assert ModelRepository(root).active_version("first") == 1

    code, out = run(*first)
    assert code == 0, out
    assert out == "not trained: the repository has models already (first)\n"
    assert ModelRepository(root).versions("first") == [1]
    again = ["train", rows, "--name", "other", "--epochs", "2", "--repository", root, "--if-empty"]
    assert run(*again)[0] == 0
    assert ModelRepository(root).names() == ["first"]


def test_datasets_and_job_records_do_not_count_as_models(
    tmp_path: Path, cardio: np.ndarray
) -> None:
    root = tmp_path / "repository"
    (root / ".datasets").mkdir(parents=True)
    (root / ".jobs.sqlite").write_bytes(b"")
    rows = tmp_path / "rows.npy"
    np.save(rows, cardio[:200])
    code, out = run(
        "train", rows, "--name", "first", "--epochs", "2", "--repository", root, "--if-empty"
    )
    assert code == 0, out
    assert ModelRepository(root).names() == ["first"]
