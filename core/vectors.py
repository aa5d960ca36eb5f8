"""Rows of numbers as request bodies carry them: finite floats only, at least one value."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32. Rows are float32 arrays once read, so a value beyond it is refused
by core/rules.py's finiteness rule, whose message names the row and column; the bound is stated
in the JSON schema only."""
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Value = Annotated[
    float,
    Field(
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
    ),
]
Rows = Annotated[list[list[Value]], Field(min_length=1)]
Row = Annotated[list[Value], Field(min_length=1)]
# A single vector is a batch of one; rows are tried first so errors name rows and columns.
Matrix = Annotated[Rows | Row, Field(union_mode="left_to_right")]
