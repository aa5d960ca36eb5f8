"""The installed `aeserve` console script, as a user runs it: train twice, list, promote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.repository import ModelRepository

pytestmark = pytest.mark.slow

AESERVE = str(Path(sys.executable).with_name("aeserve"))


def run(*args: str, repository: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AESERVE_MODEL_REPOSITORY": str(repository), "COLUMNS": "200"}
    return subprocess.run([AESERVE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_train_publishes_versions_one_then_two(tmp_path: Path):
    rows = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    data = tmp_path / "rows.npy"
    np.save(data, rows)
    repository = tmp_path / "repository"

    first = run(
        "train", str(data), "--name", "demo", "--promote", "--epochs", "3", repository=repository
    )
    assert first.returncode == 0, first.stderr
    assert "published demo version 1 (active)" in first.stdout
    second = run("train", str(data), "--name", "demo", "--epochs", "3", repository=repository)
    assert second.returncode == 0, second.stderr
    assert "published demo version 2" in second.stdout
    assert ModelRepository(repository).versions("demo") == [1, 2]
    assert ModelRepository(repository).active_version("demo") == 1

    listed = run("models", repository=repository)
    assert listed.returncode == 0
    assert "demo" in listed.stdout

    promoted = run("promote", "demo", "2", repository=repository)
    assert promoted.returncode == 0, promoted.stderr
    assert ModelRepository(repository).active_version("demo") == 2


def test_train_errors_are_one_clear_line(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,oops,6\n")
    result = run("train", str(bad), "--name", "demo", repository=tmp_path / "repository")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.csv" in result.stderr
    assert "oops" in result.stderr
