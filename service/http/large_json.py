"""A large JSON body judged from simdjson's document, never by pydantic's full parse.

pydantic-core parses and validates a JSON body holding the GIL, so a 60 MB body that the fast
path (service/http/json_matrix.py) declines, say for a string among its numbers, held every other
request for seconds, on a thread as much as inline. simdjson holds the GIL while it parses too,
but for a fraction of that time, and the body is parsed once (`parse`), for the fast path and for
this module alike. From that document this module gives pydantic's answer, the rest of the work
in pieces small enough to let the event loop in between:

- a duplicate key is refused: pydantic keeps the last, which simdjson cannot reach cheaply;
- every field but the matrix is validated by pydantic on a stand-in of a few bytes (arrays and
  objects replaced by empty ones, long strings cut: pydantic words the same error for them);
- the matrix's rows come from simdjson's buffers of doubles; only a row that is not all numbers
  goes to pydantic, a slice of it at a time, and its errors keep their row and column.

Where the answers differ: a field named twice is refused (422) rather than resolved; a body that
is not JSON to simdjson is "Invalid JSON" in simdjson's words, and simdjson refuses integers
beyond 64 bits, which pydantic reads as floats.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import orjson
import simdjson
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from core import rules
from core.errors import InvalidInput
from core.vectors import FiniteFloat
from service.http.schemas import Request

_SLICE = 4096  # values of a row validated by pydantic in one call
_SHOWN = 5  # errors a message names; the others are counted
_LONGEST_STRING = 64
_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
_ROW = TypeAdapter(list[FiniteFloat])


def parse(body: bytes) -> Any:
    """simdjson's document of a large body, or InvalidInput where it is not JSON."""
    if body.startswith(_BYTE_ORDER_MARK):  # simdjson skips one; JSON (and pydantic) does not
        raise InvalidInput("Invalid JSON: expected value at line 1 column 1")
    try:
        return simdjson.Parser().parse(body)
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(f"Invalid JSON: {exc}") from None


def judge(
    document: Any,
    schema: type[Request],
    field: str,
    dim: int,
    label: str,
    brackets: int,
    too_large: int,
) -> tuple[np.ndarray, Request]:
    """(n × dim float32 matrix, the request with a stand-in matrix) or InvalidInput, as pydantic,
    from `parse(body)`.

    `brackets` is the body's count of `[`: when it equals the matrix's own, no row nests an array;
    `too_large` the size above which bodies come here, for messages.
    """
    if not isinstance(document, simdjson.Object):
        _validate(schema, _stand_in(document), [], 0)
        raise AssertionError("pydantic accepted a body that is not an object")
    keys = list(document.keys())
    if len(set(keys)) != len(keys):
        # pydantic keeps the last; simdjson finds the first, and reaching the last would turn
        # every value into Python objects, which is the cost this module avoids.
        twice = next(key for i, key in enumerate(keys) if key in keys[:i])
        raise InvalidInput(
            f"the body names the field {twice!r} more than once; a JSON body over "
            f"{too_large} bytes must name each field once"
        )
    fields = {key: document[key] for key in keys}  # lazy: a matrix stays simdjson's
    matrix = fields.get(field)
    if not isinstance(matrix, simdjson.Array) or len(matrix) == 0:
        _validate(schema, {key: _stand_in(value) for key, value in fields.items()}, [], 0)
        raise AssertionError("pydantic accepted a body without a matrix")
    stand_ins, errors, more = _judge_matrix(matrix, brackets)
    request = _validate(
        schema,
        {key: stand_ins if key == field else _stand_in(value) for key, value in fields.items()},
        [_located(e, field) for e in errors],
        more,
    )
    rows_given = isinstance(matrix[0], simdjson.Array)
    widths = [len(cast(simdjson.Array, row)) for row in matrix] if rows_given else [len(matrix)]
    rules.check_row_widths(widths, dim, label, where=field)
    values = np.frombuffer(matrix.as_buffer(of_type="d"), dtype=np.float64)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, as NumPy casts it
        return values.reshape(len(widths), dim).astype(np.float32), request


def _judge_matrix(matrix: Any, brackets: int) -> tuple[list[Any], list[ErrorDetails], int]:
    """The matrix's stand-in for pydantic, and the errors of its rows that are not all numbers.

    A row of numbers stands in as `[0.0]`; every other element as itself, shortened. Where a row
    holds anything else, pydantic would keep the errors of the rows reading (a row given as rows
    is meant as rows), so those are returned, with the count of those left out.
    """
    arrays = [isinstance(element, simdjson.Array) for element in matrix]
    # No bracket beyond the matrix's and its rows' own: no row nests an array, so a row whose
    # buffer of doubles simdjson can make holds numbers only.
    if not any(arrays) and _numbers(matrix):
        return [0.0], [], 0  # a single vector of numbers
    plain = brackets == 1 + sum(arrays)
    stand_ins: list[Any] = []
    errors: list[ErrorDetails] = []
    more = 0
    for i, (element, is_row) in enumerate(zip(matrix, arrays, strict=True)):
        if not is_row:
            stand_ins.append(_stand_in(element))
            continue
        stand_ins.append([0.0] if len(element) else [])
        if plain and _numbers(element):
            continue
        for error in _row_errors(element):
            error["loc"] = (i, *error["loc"])
            if len(errors) < _SHOWN:
                errors.append(error)
            else:
                more += 1
    if not errors:
        return [[0.0]] if all(arrays) else stand_ins, [], 0
    # Rows reading chosen: its other errors are the elements that are not lists.
    row_type: list[ErrorDetails] = [
        {**e, "loc": (i, *e["loc"])}
        for i, element in enumerate(stand_ins)
        if not arrays[i]
        for e in _row_type_errors(element)
    ]
    ordered = sorted([*row_type, *errors], key=lambda e: [int(p) for p in e["loc"]])
    return [[0.0]], ordered[:_SHOWN], more + max(0, len(ordered) - _SHOWN)


def _numbers(array: Any) -> bool:
    try:
        array.as_buffer(of_type="d")
    except TypeError:  # an element that is not a number
        return False
    return True


def _row_errors(row: Any) -> list[ErrorDetails]:
    """pydantic's errors for one row, validated a slice at a time."""
    errors: list[ErrorDetails] = []
    for start in range(0, len(row), _SLICE):
        # Element by element: simdjson's slices convert nested values whole, however large.
        part = [_stand_in(row[j]) for j in range(start, min(start + _SLICE, len(row)))]
        try:
            _ROW.validate_json(orjson.dumps(part))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                errors.append({**error, "loc": (start + int(loc[0]), *loc[1:])})
    return errors


def _row_type_errors(element: Any) -> list[ErrorDetails]:
    try:
        _ROW.validate_json(orjson.dumps(element))
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return []


def _located(error: ErrorDetails, field: str) -> ErrorDetails:
    return {**error, "loc": (field, *error["loc"])}


def _stand_in(value: Any) -> Any:
    """A value of the same JSON kind that pydantic judges alike, of a few bytes."""
    if isinstance(value, simdjson.Object):
        return {}
    if isinstance(value, simdjson.Array):
        return []
    if isinstance(value, str) and len(value) > _LONGEST_STRING:
        return value[:_LONGEST_STRING]
    return value


def _validate(
    schema: type[Request], stand_in: Any, matrix_errors: list[ErrorDetails], more: int
) -> Request:
    # Imported here: service/http/bodies.py imports this module.
    from service.http.bodies import describe_errors

    errors: list[ErrorDetails] = []
    request: Request | None = None
    try:
        request = schema.model_validate_json(orjson.dumps(stand_in))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    if errors or matrix_errors:
        raise InvalidInput(describe_errors([*errors, *matrix_errors], more))
    assert request is not None
    return request
