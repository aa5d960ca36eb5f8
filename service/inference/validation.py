"""Input checks of the runtime: any batch → a validated C-contiguous n × d float32 array, or
`InvalidInput` with a message that names the row and the dimension the model expects."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import InvalidInput

FloatArray = npt.NDArray[np.float32]


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _describe(value: Any) -> str:
    if not isinstance(value, numbers.Real):  # e.g. None, which NumPy turns into NaN
        return repr(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:g}, beyond the float32 range"


def vectors_from_rows(
    rows: Sequence[Sequence[float]], expected_dim: int, model_label: str, what: str = ""
) -> FloatArray:
    """Lists of rows (as JSON gives them) → an n × expected_dim float32 array.

    Row lengths are checked first so a ragged batch gets a message naming its first short or
    long row; finiteness and the batch size are left to `ModelRuntime.check_vectors`.
    """
    try:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    except TypeError:
        i = next(i for i, row in enumerate(rows) if not hasattr(row, "__len__"))
        raise InvalidInput(f"row {i} is not a list of numbers") from None
    wrong = np.flatnonzero(lengths != expected_dim)
    if wrong.size:
        i = int(wrong[0])
        raise InvalidInput(
            f"row {i} has {_values(int(lengths[i]))}; {model_label} expects {expected_dim}{what}"
        )
    try:
        with np.errstate(over="ignore"):
            array = np.array(rows, dtype=np.float32)
    except (TypeError, ValueError):
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if not isinstance(value, numbers.Real):
                    raise InvalidInput(
                        f"row {i}, column {j} is {value!r}; values must be finite numbers"
                    ) from None
        raise
    return array.reshape(len(rows), expected_dim)


def check_batch(
    batch: npt.ArrayLike, expected_dim: int, max_batch: int, model_label: str, what: str = ""
) -> FloatArray:
    """A validated C-contiguous float32 n × expected_dim copy (or view) of `batch`."""
    rows = None
    if isinstance(batch, list | tuple):
        rows = [batch] if batch and isinstance(batch[0], numbers.Real) else batch
        batch = vectors_from_rows(rows, expected_dim, model_label, what)
    array = np.asarray(batch)
    if array.ndim == 1:  # a single vector is a batch of one
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInput(
            f"expected a 2-D array of shape (n, {expected_dim}); got shape {array.shape}"
        )
    n, d = array.shape
    if n == 0:
        raise InvalidInput("batch is empty")
    if n > max_batch:
        raise InvalidInput(f"batch has {n} rows; the limit is {max_batch}")
    if d != expected_dim:
        raise InvalidInput(f"row 0 has {_values(d)}; {model_label} expects {expected_dim}{what}")
    if array.dtype.kind == "O":  # mixed Python objects: numbers pass, None becomes NaN
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("values must be finite numbers") from None
    elif array.dtype.kind not in "biuf":  # strings, complex numbers, dates...
        raise InvalidInput(f"values must be finite numbers; got {array.dtype} data")
    if array.dtype == np.float32 and array.flags.c_contiguous:
        result = array
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.ascontiguousarray(array, dtype=np.float32)
    # One reduction first: a sum is finite unless some value is not (or finite ones overflow it,
    # which the exact check below then clears). Only then the elementwise check that names a cell.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(result, axis=None)
    if np.isfinite(total):
        return result
    finite = np.isfinite(result)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        value = rows[i][j] if rows is not None else array[i, j]
        raise InvalidInput(
            f"row {i}, column {j} is {_describe(value)}; values must be finite numbers"
        )
    return result
