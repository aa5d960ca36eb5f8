"""A JSON body's matrix straight into float32, for the bodies that need no judgement.

pydantic-core validating `list[list[float]]` builds one Python float per value before NumPy
packs them: at 64 rows of 784 that was most of a /score request's time. simdjson parses the
body and hands the numbers over as one buffer of doubles, no Python object per value.

It takes only bodies it can vouch for as a whole: one JSON object without duplicate or unknown
keys, whose matrix field holds rows of exactly `dim` numbers (or one flat row of them) and nothing
else, and whose other fields are scalars. Anything else returns None, and the caller hands the body
to pydantic, which accepts or rejects it with its exact messages. A body's array is the same
either way: both parsers round each decimal to the nearest double, then NumPy casts to float32.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import simdjson

# simdjson keeps one reusable buffer per parser; a body above this gets a parser of its own,
# so one huge request does not leave its buffer behind in the thread's parser.
_REUSE_LIMIT = 8 * 1024 * 1024
_SLICE = 1 << 20
_OPENERS = frozenset(b"{ \t\r\n")
_local = threading.local()


def decode(
    body: bytes,
    field: str,
    names: frozenset[str],
    dim: int,
    brackets: int | None = None,
    document: Any = None,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """(n × dim float32 matrix, the other fields' values), or None to let pydantic judge.

    `field` names the matrix, `names` every field the body may have (the matrix's included);
    `brackets` is `count_brackets(body)` where the caller has it already, `document` simdjson's
    parse of the body where the caller has made one.
    """
    if not body or body[0] not in _OPENERS:  # a byte-order mark or not an object at all
        return None
    if document is not None:
        try:
            return _decode(document, _count(body, brackets), field, names, dim)
        except (ValueError, TypeError, KeyError, IndexError):
            return None
    reuse = len(body) <= _REUSE_LIMIT
    parser: simdjson.Parser | None = getattr(_local, "parser", None) if reuse else None
    if parser is None:
        parser = simdjson.Parser()
        if reuse:
            _local.parser = parser
    try:
        document = parser.parse(body)
        return _decode(document, _count(body, brackets), field, names, dim)
    except RuntimeError:  # includes a parser still held by a document: start afresh
        _local.parser = None
        return None
    except (ValueError, TypeError, KeyError, IndexError):  # malformed or of another shape
        return None


def _count(body: bytes, brackets: int | None) -> int:
    return count_brackets(body) if brackets is None else brackets


def _decode(
    document: Any, brackets_in_body: int, field: str, names: frozenset[str], dim: int
) -> tuple[np.ndarray, dict[str, Any]] | None:
    if not isinstance(document, simdjson.Object):
        return None
    keys = list(document.keys())
    if field not in keys or len(set(keys)) != len(keys) or not names.issuperset(keys):
        return None
    matrix = document[field]
    if not isinstance(matrix, simdjson.Array) or len(matrix) == 0:
        return None
    n = len(matrix)
    if isinstance(matrix[0], simdjson.Array):  # rows
        brackets = n + 1
        if any(not isinstance(row, simdjson.Array) or len(row) != dim for row in matrix):
            return None
    else:  # a single vector, a batch of one
        brackets, n = 1, 1
        if len(matrix) != dim:
            return None
    # No bracket beyond the ones seen means no nested array anywhere: every row holds `dim`
    # scalars, and as_buffer refuses any that is not a number (objects included).
    if brackets_in_body != brackets:
        return None
    values = np.frombuffer(matrix.as_buffer(of_type="d"), dtype=np.float64)
    if values.size != n * dim:
        return None
    others = {key: document[key] for key in keys if key != field}
    if any(isinstance(v, simdjson.Object | simdjson.Array) for v in others.values()):
        return None
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, as NumPy casts it
        return values.reshape(n, dim).astype(np.float32), others


def count_brackets(body: bytes, stop_above: int | None = None) -> int:
    """How many `[` the body holds, or any count above `stop_above` once one is reached.

    A small body is counted by copying it without its brackets, faster than bytes.count for one
    byte; a large one a slice at a time, without a copy, so that a body over a limit stops being
    counted early.
    """
    if len(body) <= _SLICE:
        return len(body) - len(body.replace(b"[", b""))
    count = 0
    for start in range(0, len(body), _SLICE):
        count += body.count(b"[", start, start + _SLICE)
        if stop_above is not None and count > stop_above:
            break
    return count
