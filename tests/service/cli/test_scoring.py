"""`aeserve score`: a file scored offline with the service's inference layer, as the server
would score it; CSV on standard output or a .csv/.parquet file, the top features by name."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core import parquet
from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model, reference_outputs, sample_vectors

AESERVE = str(Path(sys.executable).with_name("aeserve"))
NAMES = ["age", "pulse", "pressure", "oxygen"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([AESERVE, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    publish_tiny_model(repository, "tiny", seed=3, feature_names=NAMES, promote=False)
    return repository


@pytest.fixture
def rows(repository: ModelRepository) -> np.ndarray:
    return sample_vectors(repository.manifest("tiny", 1), 50)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_scores_on_standard_output_match_the_reference(
    tmp_path: Path, repository: ModelRepository, rows: np.ndarray
) -> None:
    np.save(tmp_path / "rows.npy", rows)
    result = run(
        "score", str(tmp_path / "rows.npy"), "--name", "tiny", "--repository", str(repository.root)
    )
    assert result.returncode == 0, result.stderr
    table = read_csv(result.stdout)
    manifest = repository.manifest("tiny", 1)
    expected = reference_outputs(manifest, rows)["scores"]
    assert list(table[0]) == ["row", "score", "anomaly", "p_value"]
    assert [int(r["row"]) for r in table] == list(range(50))
    assert_allclose([float(r["score"]) for r in table], expected, rtol=1e-4, atol=1e-6)
    assert [r["anomaly"] == "1" for r in table] == (expected > manifest.threshold).tolist()
    flagged = int((expected > manifest.threshold).sum())
    assert (
        f"scored 50 rows of {tmp_path / 'rows.npy'} with model 'tiny' v1 from "
        f"{repository.root}: {flagged} anomalies" in result.stderr
    )


def test_a_version_the_top_features_and_a_csv_file(
    tmp_path: Path, repository: ModelRepository, rows: np.ndarray
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text(
        ",".join(NAMES) + "\n" + "\n".join(",".join(map(str, r)) for r in rows.tolist())
    )
    out = tmp_path / "scores.csv"
    result = run(
        "score",
        str(data),
        "--name",
        "tiny",
        "--version",
        "2",
        "--top",
        "2",
        "--threshold",
        "0",
        "--out",
        str(out),
        "--repository",
        str(repository.root),
    )
    assert result.returncode == 0, result.stderr
    assert f"written to {out}" in result.stderr
    assert result.stdout == ""
    table = read_csv(out.read_text())
    errors = reference_outputs(repository.manifest("tiny", 2), rows)["feature_errors"]
    worst = np.argsort(-errors, axis=1, kind="stable")[:, :2]
    assert [[r["top1_feature"], r["top2_feature"]] for r in table] == [
        [NAMES[i] for i in w] for w in worst
    ]
    assert all(r["anomaly"] == "1" for r in table)  # --threshold 0


@pytest.mark.skipif(not parquet.available(), reason="pyarrow is not installed")
def test_a_parquet_file_in_batches_with_a_progress_bar(
    tmp_path: Path, repository: ModelRepository
) -> None:
    import pyarrow.parquet as pq

    rows = sample_vectors(repository.manifest("tiny", 1), 2500)
    np.save(tmp_path / "rows.npy", rows)
    out = tmp_path / "scores.parquet"
    result = run(
        "score",
        str(tmp_path / "rows.npy"),
        "--name",
        "tiny",
        "--batch-rows",
        "1000",
        "--out",
        str(out),
        "--repository",
        str(repository.root),
    )
    assert result.returncode == 0, result.stderr
    assert "2500/2500 rows" in result.stderr  # the bar, on standard error
    table = pq.read_table(out).to_pydict()
    expected = reference_outputs(repository.manifest("tiny", 1), rows)["scores"]
    assert_allclose(table["score"], expected, rtol=1e-4, atol=1e-6)
    assert table["row"] == list(range(2500))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "missing"], "model 'missing'"),
        (["--name", "tiny", "--version", "9"], "no version 9"),
        (
            ["--name", "tiny", "--out", "scores.txt"],
            "--out scores.txt: use a .csv or .parquet file name",
        ),
    ],
)
def test_mistakes_are_one_line_errors(
    tmp_path: Path, repository: ModelRepository, rows: np.ndarray, args: list[str], message: str
) -> None:
    np.save(tmp_path / "rows.npy", rows)
    result = run("score", str(tmp_path / "rows.npy"), *args, "--repository", str(repository.root))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_rows_of_another_width_are_refused(tmp_path: Path, repository: ModelRepository) -> None:
    np.save(tmp_path / "rows.npy", np.ones((3, 5), dtype=np.float32))
    result = run(
        "score", str(tmp_path / "rows.npy"), "--name", "tiny", "--repository", str(repository.root)
    )
    assert result.returncode == 2
    assert "row 0 has 5 values; model 'tiny' v1 expects 4" in result.stderr
