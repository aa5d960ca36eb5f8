"""Turn a request body (JSON, or `.npy`) into a float32 batch.

A plain JSON body's matrix goes from simdjson's buffer of doubles to float32 with no Python object
per value (service/http/json_matrix.py), its other fields through pydantic. Any body simdjson cannot
vouch for is validated from the raw bytes in pydantic's core, which words what is wrong with it; a
large one from simdjson's document, with pydantic's words (service/http/large_json.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from core import rules
from core.errors import InvalidInput, UnsupportedMediaType
from service.http import json_matrix, large_json
from service.http.encoding import NPY, decode_npy
from service.http.schemas import (
    DecodeRequest,
    Request,
    ScoreOptionFields,
    ScoreRequest,
    VectorsRequest,
)


@dataclass(frozen=True)
class ScoreOptions:
    threshold: float | None = None
    explain: bool = False


_NO_OPTIONS = ScoreOptionFields()
PYDANTIC_MOST_BYTES = 256 * 1024
"""Largest JSON body pydantic parses whole. It parses holding the GIL, which stalls the event loop
even from a thread; a larger body that simdjson's fast path declines is judged from simdjson's
document (service/http/large_json.py)."""
_ROWS_BRANCH = "list[list[float]]"
_ROW_BRANCH = "list[float]"
_BRANCHES = (_ROWS_BRANCH, _ROW_BRANCH)


def _pick_branch(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Keep the errors of the batch shape the client meant: rows, unless no element is a list."""
    rows = [e for e in errors if len(e["loc"]) > 1 and e["loc"][1] == _ROWS_BRANCH]
    if not rows:
        return errors
    flat = [e for e in errors if len(e["loc"]) > 1 and e["loc"][1] == _ROW_BRANCH]
    meant_flat = all(e["type"] == "list_type" and len(e["loc"]) == 3 for e in rows)
    chosen, row = (flat, (0,)) if meant_flat and flat else (rows, ())
    # By location, not by `in`: comparing every error with every other took minutes for the
    # tens of thousands of errors a 256 KiB body can hold.
    other = [e for e in errors if len(e["loc"]) < 2 or e["loc"][1] not in _BRANCHES]
    # A single vector is row 0 of a batch of one.
    stripped: list[ErrorDetails] = [
        ErrorDetails(
            type=e["type"], loc=(e["loc"][0], *row, *e["loc"][2:]), msg=e["msg"], input=e["input"]
        )
        for e in chosen
    ]
    return other + stripped


def describe_validation_error(exc: ValidationError) -> str:
    """One readable sentence per problem, naming the row and column where there is one."""
    return describe_errors(exc.errors(include_url=False))


def describe_errors(errors: list[ErrorDetails], more: int = 0) -> str:
    """pydantic's errors as `describe_validation_error` words them; `more` errors left out."""
    parts = []
    for error in _pick_branch(errors):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and isinstance(loc[1], int):
            where = f"{loc[0]}: row {loc[1]}"
            if len(loc) >= 3 and isinstance(loc[2], int):
                where += f", column {loc[2]}"
        elif loc:
            where = ".".join(str(p) for p in loc)
        message = error["msg"]
        parts.append(f"{where}: {message}" if where else message)
    left = len(parts) - 5 + more
    return "; ".join(parts[:5]) + (f" (and {left} more)" if left > 0 else "")


T = TypeVar("T", bound=Request)


def parse_json(body: bytes, schema: type[T]) -> T:
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


def rows_to_array(
    rows: Sequence[Sequence[float]], field: str, expected_dim: int, label: str
) -> np.ndarray:
    """Pack validated rows into float32; a ragged batch is named by its first odd row."""
    try:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf; check_batch names it
            array = np.array(rows, dtype=np.float32)
    except ValueError:  # ragged: NumPy refuses it, and the width check below names the row
        array = None
    if array is None or array.shape[1:] != (expected_dim,):
        # Only a batch that is wrong pays for measuring its rows.
        rules.check_row_widths(rules.row_widths(rows), expected_dim, label, where=field)
    assert array is not None
    return array


def is_npy(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == NPY


def _check_content_type(content_type: str) -> None:
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json") and media != NPY:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media!r}; send application/json or {NPY}"
        )


def count_brackets(body: bytes, max_rows: int) -> int:
    """The JSON body's count of `[`, refusing a body of more than `max_rows` rows.

    Each row opens a bracket, the matrix one more: a count far cheaper than a parse, so a body of
    too many rows is refused before it becomes objects or numbers.
    """
    brackets = json_matrix.count_brackets(body, stop_above=max_rows + 1)
    if brackets - 1 > max_rows:
        rules.check_batch_size(brackets - 1, max_rows)
    return brackets


class RowCount:
    """A JSON body's `[` counted chunk by chunk as it arrives, so that a body of more than
    `max_rows` rows is known as soon as its last byte is in: what arrives after the count
    passes the limit is dropped, not kept for a parse that will not happen."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.brackets = 0

    def keep(self, chunk: bytes) -> bool:
        """Counts `chunk`; whether the body is still worth keeping."""
        self.brackets += chunk.count(b"[")
        return self.brackets - 1 <= self.max_rows

    def check(self) -> None:
        """Refuses the whole body once it has arrived, if it holds too many rows."""
        if self.brackets - 1 > self.max_rows:
            rules.check_batch_size(self.brackets - 1, self.max_rows)


def read_batch(
    body: bytes,
    content_type: str,
    schema: type[VectorsRequest] | type[DecodeRequest],
    expected_dim: int,
    label: str,
    max_rows: int,
    brackets: int | None = None,
) -> tuple[np.ndarray, Request | None]:
    """The request's matrix as an array, and its other fields where a JSON body may carry some.

    simdjson reads plain bodies (service/http/json_matrix.py); pydantic judges every other one.
    A body with more than `max_rows` rows is refused before either parses it (`brackets` is
    `count_brackets(body, max_rows)` where the caller has counted already).
    """
    _check_content_type(content_type)
    if is_npy(content_type):
        return decode_npy(body), None  # a view of the body: its header's shape is checked later
    field = "codes" if schema is DecodeRequest else "vectors"
    if brackets is None:
        brackets = count_brackets(body, max_rows)
    # A large body is parsed once, here: simdjson holds the GIL while it parses.
    document = large_json.parse(body) if len(body) > PYDANTIC_MOST_BYTES else None
    fast = json_matrix.decode(
        body, field, _field_names(schema), expected_dim, brackets, document=document
    )
    if fast is not None:
        array, others = fast
        if schema is not ScoreRequest:
            return array, None  # the only field is the matrix
        if not others:
            return array, _NO_OPTIONS
        try:
            options = ScoreOptionFields.model_validate(others, strict=True)
        except ValidationError:
            pass  # pydantic's full pass below finds it again and words it
        else:
            return array, options
    if document is not None:
        try:
            return large_json.judge(
                document, schema, field, expected_dim, label, brackets, PYDANTIC_MOST_BYTES
            )
        except InvalidInput as exc:
            message = exc.message
        # Raised afresh, so that no frame of its traceback holds the document (hundreds of MB
        # of simdjson's buffers) for as long as the error is being answered.
        document = None
        raise InvalidInput(message)
    request = parse_json(body, schema)
    rows = request.codes if isinstance(request, DecodeRequest) else request.vectors
    # A single vector is a batch of one.
    matrix = rows if isinstance(rows[0], list) else [rows]
    return rows_to_array(matrix, field, expected_dim, label), request


@functools.cache
def _field_names(schema: type[Request]) -> frozenset[str]:
    return frozenset(schema.model_fields)


def score_options(request: Request | None, threshold: float | None, explain: bool) -> ScoreOptions:
    """A JSON body's field wins; the query string gives what the body leaves out (all of it for
    `.npy` bodies)."""
    if isinstance(request, ScoreRequest | ScoreOptionFields):
        given = request.model_fields_set
        return ScoreOptions(
            threshold=request.threshold if "threshold" in given else threshold,
            explain=request.explain if "explain" in given else explain,
        )
    return ScoreOptions(threshold=threshold, explain=explain)
