"""Outputs a client can rely on: an input that is finite in float32 can still overflow inside
the graph (a value of 1e16 squared in its score), and a 200 whose JSON says `null` is no answer."""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInput
from service.inference.validation import FloatArray


def finite_output(array: FloatArray, name: str) -> FloatArray:
    """`array` (rows first) unchanged when every value is finite; else a 422 naming the row."""
    finite = np.isfinite(array)
    if finite.all():
        return array
    row = int(np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))[0])
    raise InvalidInput(
        f"row {row}: its {name} overflow float32; its values lie too far outside the range "
        "the model was trained on for it to compute them"
    )
