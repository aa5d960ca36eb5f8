"""Loading training data into one float32 n × d array, with errors that name the problem.

Sources: .csv (header optional), .npy, .npz (array `X`, else the first), .parquet, and the
built-in `builtin:digits` (scikit-learn's 8×8 digits, pixels scaled to [0, 1]).
"""

from __future__ import annotations

import csv
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import Any, BinaryIO

import numpy as np

from core import parquet, rules
from core.dataset_limits import CSV_VALUE_BYTES, DatasetLimits

BUILTIN_DIGITS = ("builtin:digits", "sklearn:digits")
SUFFIXES = (".csv", ".npy", ".npz", ".parquet")
NPY_MAGIC = b"\x93NUMPY"
MAX_NAME = 256


# numpy parses a .npy header with ast and tokenize: a crafted one raises any of these.
_UNREADABLE_NPY = (ValueError, SyntaxError, TokenError, RecursionError)


class DataError(ValueError):
    """Data that cannot be trained on or scored: the message names the source and the problem."""


@dataclass(frozen=True)
class Table:
    """Training rows and, where the source names its columns, one name per column."""

    array: np.ndarray
    feature_names: list[str] | None


def load_array(source: str | Path, limits: DatasetLimits | None = None) -> np.ndarray:
    """Read `source` into a finite float32 array of shape (rows, features).

    With `limits` (an upload), a file that declares more rows or decoded bytes than they allow is
    refused (`DatasetTooLarge`) from its header or metadata, before its data is read.
    """
    return load_table(source, limits).array


def load_table(source: str | Path, limits: DatasetLimits | None = None) -> Table:
    """`load_array` with the column names: a CSV header's cells, a parquet file's columns,
    scikit-learn's pixel names for the digits; none for .npy and .npz."""
    if str(source) in BUILTIN_DIGITS:
        return Table(_load_digits(), _digits_names())
    path = Path(source)
    names: list[str] | None = None
    if path.suffix.lower() == ".csv" and path.is_file():
        names = _csv_header(path)
    elif path.suffix.lower() == ".parquet" and path.is_file() and parquet.available():
        names = _parquet_columns(path)
    array = _load_file(source, limits)
    if names is not None and len(names) != array.shape[1]:
        names = None  # a header narrower or wider than the rows names nothing reliably
    elif names is not None:
        names = [name[:MAX_NAME] for name in names]  # the manifest keeps names this short
        if len(set(names)) != len(names):
            names = _distinct(names)
    return Table(array, names)


def _distinct(names: list[str]) -> list[str]:
    """Repeated or blank header cells made unique as pandas does: `a`, `a.1`, `a.2`."""
    seen: dict[str, int] = {}
    out = []
    for index, name in enumerate(names):
        name = name or f"x{index}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}.{count}")
    return out


def _load_file(source: str | Path, limits: DatasetLimits | None) -> np.ndarray:
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(SUFFIXES)} or {BUILTIN_DIGITS[0]}"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if suffix == ".csv":
        return _load_csv(path, limits)
    if suffix == ".npy":
        raw = _load_npy(path, limits)
    elif suffix == ".npz":
        raw = _load_npz(path, limits)
    else:
        raw = _load_parquet(path, limits)
    return as_training_array(raw, str(path))


def as_training_array(raw: np.ndarray, source: str) -> np.ndarray:
    """Check shape, dtype and finiteness of an in-memory array; return it as float32.

    The rules (core/rules.py) raise `RuleViolation`, the loaders' own problems `DataError`.
    """
    numbers = rules.as_numbers(raw, where=source)
    rules.check_two_dimensional(numbers.shape, where=source)
    if numbers.shape[0] == 0 or numbers.shape[1] == 0:
        raise DataError(f"{source}: has shape {raw.shape}; expected at least one row and column")
    array = _to_float32(numbers)
    rules.check_finite(array, numbers, where=source)
    return array


def _to_float32(raw: np.ndarray) -> np.ndarray:
    """Converting before the finiteness check also catches values too large for float32."""
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(raw, dtype=np.float32)


def _load_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    # Pixels are counts 0..16; dividing makes them [0, 1] intensities usable with BCE.
    pixels: np.ndarray = load_digits().data
    return (pixels / 16.0).astype(np.float32)


def _digits_names() -> list[str]:
    from sklearn.datasets import load_digits

    return [str(name) for name in load_digits().feature_names]


def _csv_header(path: Path) -> list[str] | None:
    """The first line's cells when it is a header (not all numbers), stripped; else None."""
    try:
        with path.open(newline="") as f:
            first = f.readline()
    except (UnicodeDecodeError, OSError):
        return None  # _load_csv says what is wrong with the file
    if not first.strip():
        return None
    cells = next(csv.reader([first], delimiter=_sniff_delimiter(first)))
    if all(_is_number(cell) for cell in cells):
        return None
    names = [cell.strip() for cell in cells]
    return _distinct(names) if any(not name for name in names) else names


def _parquet_columns(path: Path) -> list[str] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return [str(name) for name in pq.read_schema(path).names]
    except (pa.ArrowException, OSError):
        return None  # _load_parquet says what is wrong with the file


def _check_npy_header(
    stream: BinaryIO, available: int, path: Path, suffix: str, limits: DatasetLimits | None
) -> None:
    """Read the header first: numpy allocates what it says before it reads a byte, so a header
    that claims more data than the file holds, or more than `limits` allow, must be refused
    before `np.load` (in a .npz, before the member is decompressed)."""
    try:
        version = np.lib.format.read_magic(stream)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = reader(stream)
    except _UNREADABLE_NPY as exc:
        raise _unreadable(path, exc, suffix) from None
    if any(n < 0 for n in shape):
        raise DataError(f"{path}: not a readable {suffix} file (shape {shape} is negative)")
    claimed = math.prod(shape) * dtype.itemsize  # Python ints: never wraps
    if claimed > available - stream.tell():
        raise DataError(
            f"{path}: not a readable {suffix} file (its header says {shape} of {dtype}, "
            f"{claimed} bytes, but it holds {available - stream.tell()})"
        )
    if limits is not None:
        limits.check(shape[0] if shape else 1, claimed, str(path))


def _load_npy(path: Path, limits: DatasetLimits | None) -> np.ndarray:
    with path.open("rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DataError(f"{path}: is not a .npy file (no NumPy header)")
        f.seek(0)
        _check_npy_header(f, path.stat().st_size, path, ".npy", limits)
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
    except _UNREADABLE_NPY as exc:
        raise _unreadable(path, exc) from None
    return array


def _load_npz(path: Path, limits: DatasetLimits | None) -> np.ndarray:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: is not a .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = archive.files
            if not keys:
                raise DataError(f"{path}: holds no arrays")
            key = "X" if "X" in keys else keys[0]
            with zipfile.ZipFile(path) as zipped:
                member = zipped.getinfo(f"{key}.npy" if f"{key}.npy" in zipped.namelist() else key)
                # zipfile stops at the member's declared size, so the header's shape, checked
                # against that size and the limits, bounds what decompressing it can produce.
                with zipped.open(member) as stream:
                    _check_npy_header(stream, member.file_size, path, ".npz", limits)  # type: ignore[arg-type]
            array: np.ndarray | None = archive[key]
    except DataError:
        raise
    except (*_UNREADABLE_NPY, zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc) from None
    if array is None:
        raise DataError(f"{path}: holds no arrays")
    return array


def _unreadable(path: Path, exc: Exception, suffix: str | None = None) -> DataError:
    # allow_pickle=False refuses object arrays, which is how ragged rows get saved.
    if "pickle" in str(exc).lower():
        return DataError(
            f"{path}: holds Python objects (ragged rows?); expected a numeric 2-D array"
        )
    return DataError(f"{path}: not a readable {suffix or path.suffix} file ({exc})")


def _load_parquet(path: Path, limits: DatasetLimits | None) -> np.ndarray:
    if not parquet.available():
        raise DataError(f"{path}: {parquet.MISSING}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if limits is not None:
            _check_parquet_metadata(pq.read_metadata(path), limits, path)
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable .parquet file ({exc})") from None
    columns = []
    for index, (field, column) in enumerate(zip(table.schema, table.columns, strict=True)):
        kind = field.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if not (numeric or pa.types.is_boolean(kind)):
            raise DataError(
                f"{path}: column {index} ({field.name!r}) holds {kind} values; expected numbers"
            )
        # Nulls become NaN here, so the finiteness check reports their row.
        columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if not columns:
        raise DataError(f"{path}: has no columns")
    return np.column_stack(columns)


def _check_parquet_metadata(metadata: Any, limits: DatasetLimits, path: Path) -> None:
    """Rows from the file and row-group metadata (the larger, should they disagree), each value
    decoding to a float64: compressed or run-length-encoded pages say nothing of that size."""
    groups = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    rows = max(metadata.num_rows, groups)
    limits.check(rows, rows * metadata.num_columns * CSV_VALUE_BYTES, str(path))


def _count_lines(path: Path) -> int:
    """Lines of a text file, read a megabyte at a time (a last line without a newline counts)."""
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _load_csv(path: Path, limits: DatasetLimits | None) -> np.ndarray:
    """Parse with numpy's fast reader; on failure, rescan in Python to say exactly where.

    Rows are reported as 1-based file lines and columns as 1-based fields, as an editor shows them.
    """
    try:
        with path.open(newline="") as f:
            first = f.readline()
    except UnicodeDecodeError:
        raise DataError(f"{path}: is not a text file") from None
    if not first.strip():
        raise DataError(f"{path}: is empty")
    delimiter = _sniff_delimiter(first)
    cells = next(csv.reader([first], delimiter=delimiter))
    header = not all(_is_number(cell) for cell in cells)
    if limits is not None:  # counted before numpy parses a line: rows × first-line width
        rows = _count_lines(path) - int(header)
        limits.check(rows, rows * len(cells) * CSV_VALUE_BYTES, str(path))
    try:
        with warnings.catch_warnings():
            # A header-only file is reported below; numpy's "no data" warning would only repeat it.
            warnings.simplefilter("ignore", UserWarning)
            raw = np.loadtxt(
                path,
                delimiter=delimiter,
                skiprows=int(header),
                quotechar='"',
                comments=None,
                dtype=np.float64,
                ndmin=2,
            )
    except (ValueError, UnicodeDecodeError) as exc:
        _raise_csv_problem(path, delimiter, header)
        raise DataError(f"{path}: not a readable .csv file ({exc})") from None
    if raw.size == 0:
        raise DataError(f"{path}: has a header but no rows")
    array = _to_float32(raw)
    # Named as an editor shows the file: 1-based lines (after the header) and fields.
    first_row_line = 1 + int(header)
    rules.check_finite(
        array, raw, cell=lambda i, j: f"line {i + first_row_line}, column {j + 1}", where=str(path)
    )
    return as_training_array(array, str(path))


def _raise_csv_problem(path: Path, delimiter: str, header: bool) -> None:
    width: int | None = None
    width_line = 0
    with path.open(newline="") as f:
        for line_number, row in enumerate(csv.reader(f, delimiter=delimiter), start=1):
            if line_number == 1 and header:
                continue
            if not row:
                continue
            if width is None:
                width, width_line = len(row), line_number
            elif len(row) != width:
                raise rules.row_width_error(
                    f"line {line_number}",
                    len(row),
                    width,
                    first_row=f"line {width_line}",
                    where=str(path),
                )
            for column, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    raise DataError(
                        f"{path}: line {line_number}, column {column} is not a number: {cell!r}"
                    )
    if width is None:
        raise DataError(f"{path}: has no rows")


def _sniff_delimiter(line: str) -> str:
    for delimiter in (",", ";", "\t"):
        if delimiter in line:
            return delimiter
    return ","


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
