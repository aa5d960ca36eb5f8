"""Rows of numbers as request bodies carry them: finite floats only, at least one value."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Rows = Annotated[list[list[FiniteFloat]], Field(min_length=1)]
Row = Annotated[list[FiniteFloat], Field(min_length=1)]
# A single vector is a batch of one; rows are tried first so errors name rows and columns.
Matrix = Annotated[Rows | Row, Field(union_mode="left_to_right")]
