"""The input rules, each defined once, with its message: what the API checks at submit time and
at inference, and what training checks again on the data it is given.

Every rule raises `RuleViolation`: a 422 `InvalidInput` in the service, and a `ValueError` in the
training process, whose job runner and CLI report a ValueError's message as what to change.
`where` names the part of the input a rule judged ("vectors", "config", a file's path) and
prefixes the message with it.

The checks on the request path cost one vectorised pass on valid input; only a batch that breaks
a rule pays for finding the row to name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import InvalidInput

MIN_ROWS = 10
"""Fewest rows a model trains on; the API checks it at submit time, training again."""
BCE_RANGE_TOLERANCE = 1e-5
"""minmax-scaled rows can land a float32 rounding outside [0, 1]; that is no error."""
FINITE_NUMBERS = "values must be finite numbers"


class RuleViolation(InvalidInput, ValueError):
    """Input that breaks one of the rules below; the message names where and what was expected."""


def _violation(where: str, message: str) -> RuleViolation:
    return RuleViolation(f"{where}: {message}" if where else message)


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def model_label(name: str, version: int) -> str:
    """How messages name one version of a model: "model 'cardio' v2"."""
    return f"model {name!r} v{version}"


# -- shape --------------------------------------------------------------------------------------


def check_two_dimensional(
    shape: tuple[int, ...], expected: int | None = None, where: str = ""
) -> None:
    """A batch or a dataset is a 2-D array: rows × the model's (or the data's) features."""
    if len(shape) != 2:
        columns = "features" if expected is None else expected
        raise _violation(where, f"expected a 2-D array of shape (n, {columns}); got shape {shape}")


def row_widths(rows: Sequence[Any], where: str = "") -> npt.NDArray[np.int64]:
    """The length of each row of a list of rows; a row that is not a list is named."""
    try:
        return np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    except TypeError:
        i = next(i for i, row in enumerate(rows) if not hasattr(row, "__len__"))
        raise _violation(where, f"row {i} is not a list of numbers") from None


def row_width_error(
    row: str,
    count: int,
    expected: int,
    model: str | None = None,
    *,
    first_row: str = "row 0",
    what: str = "",
    where: str = "",
) -> RuleViolation:
    """`row` has `count` values where `model` expects `expected` (without a model, training data
    is as wide as its first row)."""
    reference = f"{model} expects" if model else f"{first_row} has"
    return _violation(where, f"{row} has {_values(count)}; {reference} {expected}{what}")


def check_row_widths(
    widths: npt.ArrayLike,
    expected: int,
    model: str | None = None,
    *,
    what: str = "",
    where: str = "",
) -> None:
    """Every row holds `expected` values; the first that does not is named."""
    counts = np.asarray(widths)
    wrong = np.flatnonzero(counts != expected)
    if wrong.size:
        i = int(wrong[0])
        raise row_width_error(f"row {i}", int(counts[i]), expected, model, what=what, where=where)


def check_batch_size(rows: int, limit: int, where: str = "") -> None:
    """A scoring batch holds at least one row and at most `limit` (the server's `max_batch`)."""
    if rows == 0:
        raise _violation(where, "batch is empty")
    if rows > limit:
        raise _violation(where, f"batch has {rows} rows; the limit is {limit}")


# -- values -------------------------------------------------------------------------------------


def as_numbers(array: np.ndarray, where: str = "") -> np.ndarray:
    """`array` if it holds numbers (booleans count); an array of Python numbers as float64."""
    if array.dtype.kind == "O":  # mixed Python objects: numbers pass, None becomes NaN
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError):
            raise _violation(where, FINITE_NUMBERS) from None
    if array.dtype.kind not in "biuf":  # strings, complex numbers, dates...
        raise _violation(where, f"{FINITE_NUMBERS}; got {array.dtype} data")
    return array


def _describe(value: Any) -> str:
    if not isinstance(value, numbers.Real):  # e.g. None, or a string in a list of rows
        return repr(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:g}, beyond the float32 range"


def bad_value_error(cell: str, value: Any, where: str = "") -> RuleViolation:
    """The value at `cell` ("row 3, column 1") is not a finite number (`value` as sent)."""
    return _violation(where, f"{cell} is {_describe(value)}; {FINITE_NUMBERS}")


def _row_column(row: int, column: int) -> str:
    return f"row {row}, column {column}"


def check_finite(
    array: np.ndarray,
    values: Any = None,
    *,
    cell: Callable[[int, int], str] = _row_column,
    where: str = "",
) -> None:
    """Every value of the 2-D float `array` is finite; else the first bad cell is named.

    `values` are what the array was made from (rows, or a wider array), so that a value which
    became inf only in float32 is shown as sent. One reduction first: a sum is finite unless some
    value is not (or finite ones overflow it, which the exact check below then clears), so valid
    input pays one pass and no mask.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(array, axis=None)
    if np.isfinite(total):
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    i, j = (int(k) for k in np.argwhere(~finite)[0])
    value = array[i, j] if values is None else values[i][j]
    raise bad_value_error(cell(i, j), value, where)


# -- training data ------------------------------------------------------------------------------


def check_min_rows(rows: int, minimum: int = MIN_ROWS) -> None:
    if rows < minimum:
        raise RuleViolation(f"data has {rows} rows; training needs at least {minimum}")


def check_input_dim(dim: int, expected: int, model: str) -> None:
    """A new version keeps its model's input dimension: the model's clients send d-wide rows."""
    if dim != expected:
        raise RuleViolation(f"data has {dim} features; {model} expects {expected}")


def check_validation_split(rows: int, fraction: float, where: str = "") -> int:
    """The number of validation rows; both the validation and the training part get one or more."""
    n_val = round(rows * fraction)
    if not 1 <= n_val < rows:
        raise _violation(
            where,
            f"validation_fraction {fraction} of {rows} rows leaves {n_val} validation and "
            f"{rows - n_val} training rows; both need at least one",
        )
    return n_val


def check_bce_range(
    minimum: npt.ArrayLike, maximum: npt.ArrayLike, scaling: str, where: str = ""
) -> None:
    """BCE targets are probabilities: each column's values, as scaled, lie in [0, 1].

    `minimum` and `maximum` are per column; the first column outside is named.
    """
    low, high = np.asarray(minimum), np.asarray(maximum)
    outside = np.flatnonzero((low < -BCE_RANGE_TOLERANCE) | (high > 1 + BCE_RANGE_TOLERANCE))
    if outside.size:
        column = int(outside[0])
        more = f" ({outside.size} columns in all)" if outside.size > 1 else ""
        raise _violation(
            where,
            f"loss 'bce' needs inputs in [0, 1] after scaling; with scaling {scaling!r} "
            f"column {column} ranges {low[column]:.4g}..{high[column]:.4g}{more}: "
            "use scaling 'minmax' or loss 'mse'",
        )
