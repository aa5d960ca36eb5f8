"""Input checks of the runtime: any batch → a validated C-contiguous n × d float32 array, or
`InvalidInput` with a message that names the row and the dimension the model expects.

The rules and their messages are core/rules.py's; this module only orders them for a batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core import rules

FloatArray = npt.NDArray[np.float32]


def vectors_from_rows(
    rows: Sequence[Sequence[float]], expected_dim: int, model_label: str, what: str = ""
) -> FloatArray:
    """Lists of rows (as JSON gives them) → an n × expected_dim float32 array.

    Row lengths are checked first so a ragged batch gets a message naming its first short or
    long row; finiteness and the batch size are left to `check_batch`.
    """
    rules.check_row_widths(rules.row_widths(rows), expected_dim, model_label, what=what)
    try:
        with np.errstate(over="ignore"):
            array = np.array(rows, dtype=np.float32)
    except (TypeError, ValueError):
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if not isinstance(value, numbers.Real):
                    raise rules.bad_value_error(f"row {i}, column {j}", value) from None
        raise
    return array.reshape(len(rows), expected_dim)


def check_batch(
    batch: npt.ArrayLike, expected_dim: int, max_batch: int, model_label: str, what: str = ""
) -> FloatArray:
    """A validated C-contiguous float32 n × expected_dim copy (or view) of `batch`.

    Raises `InvalidInput` (a `core.rules.RuleViolation`) naming the rule the batch breaks.
    """
    rows = None
    if isinstance(batch, list | tuple):
        rows = [batch] if batch and isinstance(batch[0], numbers.Real) else batch
        batch = vectors_from_rows(rows, expected_dim, model_label, what)
    array = np.asarray(batch)
    if array.ndim == 1:  # a single vector is a batch of one
        array = array.reshape(1, -1)
    rules.check_two_dimensional(array.shape, expected_dim)
    n, d = array.shape
    rules.check_batch_size(n, max_batch)
    if d != expected_dim:
        raise rules.row_width_error("row 0", d, expected_dim, model_label, what=what)
    array = rules.as_numbers(array)
    if array.dtype == np.float32 and array.flags.c_contiguous:
        result = array
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.ascontiguousarray(array, dtype=np.float32)
    rules.check_finite(result, array if rows is None else rows)
    return result
