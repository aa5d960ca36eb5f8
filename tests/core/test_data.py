from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data import DataError, load_array
from core.rules import RuleViolation

ROWS = np.array([[1.0, 2.5, -3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], dtype=np.float32)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load_error(source: str | Path) -> str:
    with pytest.raises((DataError, RuleViolation)) as caught:
        load_array(source)
    return str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "1,2.5,-3\n4,5,6\n7,8,9\n",
        "a,b,c\n1,2.5,-3\n4,5,6\n7,8,9\n",
        '"a";"b";"c"\n1;2.5;-3\n4;5;6\n7;8;9',
        "1\t2.5\t-3\r\n4\t5\t6\r\n7\t8\t9\r\n",
    ],
    ids=["plain", "header", "semicolons", "tabs-crlf"],
)
def test_csv_with_or_without_header(tmp_path: Path, text: str) -> None:
    X = load_array(write(tmp_path / "rows.csv", text))
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, ROWS)


def test_npy_of_integers_becomes_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "rows.npy", np.arange(6, dtype=np.int64).reshape(3, 2))
    X = load_array(tmp_path / "rows.npy")
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, [[0, 1], [2, 3], [4, 5]])


def test_npz_prefers_x_and_falls_back_to_the_first_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "named.npz", y=np.zeros(3), X=ROWS)
    np.savez(tmp_path / "unnamed.npz", first=ROWS, second=np.zeros((3, 1)))
    np.testing.assert_array_equal(load_array(tmp_path / "named.npz"), ROWS)
    np.testing.assert_array_equal(load_array(tmp_path / "unnamed.npz"), ROWS)


def test_parquet_columns_become_features(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 4, 7], "b": [2.5, 5.0, 8.0], "c": [-3.0, 6.0, 9.0]})
    pq.write_table(table, tmp_path / "rows.parquet")
    np.testing.assert_array_equal(load_array(tmp_path / "rows.parquet"), ROWS)


@pytest.mark.parametrize("source", ["builtin:digits", "sklearn:digits"])
def test_builtin_digits_are_pixels_in_the_unit_interval(source: str) -> None:
    X = load_array(source)
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0


def test_csv_non_numeric_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "a,b\n1,2\n3,oops\n")
    assert load_error(path) == f"{path}: line 3, column 2 is not a number: 'oops'"


def test_csv_empty_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "1,2,3\n4,,6\n")
    assert load_error(path) == f"{path}: line 2, column 2 is not a number: ''"


def test_csv_ragged_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "1,2,3\n4,5,6\n7,8\n")
    assert load_error(path) == f"{path}: line 3 has 2 values; line 1 has 3"


def test_csv_nan(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "a,b\n1,2\n3,4\nnan,5\n")
    assert load_error(path) == f"{path}: line 4, column 1 is NaN; values must be finite numbers"


def test_csv_value_too_large_for_float32(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "1,2\n3,1e39\n")
    assert load_error(path) == (
        f"{path}: line 2, column 2 is 1e+39, beyond the float32 range; "
        "values must be finite numbers"
    )


def test_csv_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "a,b,c\n")
    assert load_error(path) == f"{path}: has a header but no rows"


def test_csv_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", "")
    assert load_error(path) == f"{path}: is empty"


def test_npy_infinite_value(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows[2, 0] = np.inf
    rows[1, 1] = np.nan
    np.save(tmp_path / "rows.npy", rows)
    path = tmp_path / "rows.npy"
    assert load_error(path) == f"{path}: row 1, column 1 is NaN; values must be finite numbers"


def test_npy_ragged_rows(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    np.save(tmp_path / "rows.npy", ragged, allow_pickle=True)
    path = tmp_path / "rows.npy"
    expected = f"{path}: holds Python objects (ragged rows?); expected a numeric 2-D array"
    assert load_error(path) == expected


@pytest.mark.parametrize(
    ("array", "shape"), [(np.zeros(4), "(4,)"), (np.zeros((2, 3, 4)), "(2, 3, 4)")]
)
def test_npy_not_two_dimensional(tmp_path: Path, array: np.ndarray, shape: str) -> None:
    np.save(tmp_path / "rows.npy", array)
    path = tmp_path / "rows.npy"
    assert load_error(path) == (
        f"{path}: expected a 2-D array of shape (n, features); got shape {shape}"
    )


def test_npy_of_strings(tmp_path: Path) -> None:
    np.save(tmp_path / "rows.npy", np.array([["a", "b"]]))
    path = tmp_path / "rows.npy"
    assert load_error(path) == f"{path}: values must be finite numbers; got <U1 data"


def test_npz_without_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "rows.npz")
    path = tmp_path / "rows.npz"
    assert load_error(path) == f"{path}: holds no arrays"


def test_parquet_text_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1.0], "label": ["x"]}), tmp_path / "rows.parquet")
    path = tmp_path / "rows.parquet"
    assert load_error(path) == f"{path}: column 1 ('label') holds string values; expected numbers"


def test_parquet_null_is_reported_by_row(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1.0, None, 3.0]}), tmp_path / "rows.parquet")
    path = tmp_path / "rows.parquet"
    assert load_error(path) == f"{path}: row 1, column 0 is NaN; values must be finite numbers"


def test_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.json", "[]")
    expected = (
        f"{path}: unknown file type '.json'; use one of .csv, .npy, .npz, .parquet "
        "or builtin:digits"
    )
    assert load_error(path) == expected


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.npy"
    assert load_error(path) == f"{path}: no such file"


def test_not_really_an_npy_file(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.npy", "1,2,3\n")
    assert load_error(path) == f"{path}: is not a .npy file (no NumPy header)"


def test_not_really_an_npz_file(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.npz", "1,2,3\n")
    assert load_error(path) == f"{path}: is not a .npz file (not a zip archive)"


def test_npz_ragged_rows(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    np.savez(tmp_path / "rows.npz", X=ragged)
    path = tmp_path / "rows.npz"
    expected = f"{path}: holds Python objects (ragged rows?); expected a numeric 2-D array"
    assert load_error(path) == expected
