"""Feature names: read from a CSV header or parquet columns, kept in the manifest, checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import parquet
from core.data import load_table
from core.errors import CorruptVersion
from core.manifest import MANIFEST, read_exported_manifest
from tests.core.manifests import sample_manifest_json


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_csv_header_gives_the_names(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "a.csv", " age ,pulse\n1,2\n3,4\n"))
    assert table.feature_names == ["age", "pulse"]
    assert table.array.tolist() == [[1, 2], [3, 4]]


def test_a_csv_without_header_has_no_names(tmp_path: Path) -> None:
    assert load_table(write(tmp_path, "a.csv", "1,2\n3,4\n")).feature_names is None


def test_repeated_and_blank_header_cells_are_made_distinct(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "a.csv", "a;a;;b\n1;2;3;4\n"))
    assert table.feature_names == ["a", "a.1", "x2", "b"]


def test_over_long_names_are_cut_to_what_the_manifest_keeps(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "a.csv", f"{'n' * 300},b\n1,2\n"))
    assert table.feature_names == ["n" * 256, "b"]


def test_npy_has_no_names(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((3, 2), dtype=np.float32))
    assert load_table(tmp_path / "a.npy").feature_names is None


@pytest.mark.skipif(not parquet.available(), reason="pyarrow is not installed")
def test_parquet_columns_give_the_names(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"age": [1.0, 2.0], "pulse": [3, 4]}), tmp_path / "a.parquet")
    table = load_table(tmp_path / "a.parquet")
    assert table.feature_names == ["age", "pulse"]
    assert table.array.tolist() == [[1, 3], [2, 4]]


def test_the_builtin_digits_are_named_by_pixel() -> None:
    names = load_table("builtin:digits").feature_names
    assert names is not None and len(names) == 64
    assert names[:2] == ["pixel_0_0", "pixel_0_1"]


def test_a_manifest_without_names_loads_and_names_features_as_scikit_learn(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps(sample_manifest_json(input_dim=3)))
    manifest = read_exported_manifest(tmp_path)
    assert manifest.feature_names is None
    assert manifest.names_of_features() == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["a"], "feature_names has 1 names; the data has 2 features"),
        (["a", "a"], "feature_names: 'a' names both feature 0 and feature 1"),
        (["a", ""], "feature_names.1: String should have at least 1 character"),
    ],
)
def test_a_manifest_with_bad_names_is_corrupt(
    tmp_path: Path, names: list[str], problem: str
) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({**sample_manifest_json(), "feature_names": names}))
    with pytest.raises(CorruptVersion) as caught:
        read_exported_manifest(tmp_path)
    assert caught.value.message.endswith(problem)
