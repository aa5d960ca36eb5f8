"""The POST /train body: read under its own cap and validated off the event loop.

FastAPI validated a /train body of up to the body limit (64 MiB of inline rows) on the event loop.
Here the body is refused past `max_train_body_bytes` as it arrives (413 naming the /datasets
upload, the way for larger data), and validated on a thread for a body over `inline_body_bytes`.
pydantic still holds the GIL while it validates, so the cap is what bounds the stall. A
validation error is raised as FastAPI's own, so its messages are the ones FastAPI gave.

Inline rows leave the parse as one float32 matrix, not as lists of Python floats: a worker
process's lists were unpickled into millions of float objects in the API process, whose freed
memory the allocator kept (the soak's RSS grew by a step at every inline /train). Where it can,
the parse makes no Python float at all (`_parse_rows_apart`): simdjson hands the rows over as
one buffer of doubles and pydantic validates the rest of the body, a few hundred bytes; a body it
cannot vouch for goes to pydantic whole, which accepts or refuses it with its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
import simdjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core import rules
from core.errors import InvalidInput, PayloadTooLarge
from core.settings import Settings
from service.http import offload
from service.http.openapi_schemas import inline_schema
from service.jobs.schemas import TrainRequest
from service.jobs.submission import as_matrix

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_schema(TrainRequest)}},
    }
}
"""The request schema FastAPI documented when it read the body itself."""


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a /train body may hold {cap} bytes; upload larger data with POST /datasets and "
        "name it in data.dataset"
    )


@dataclass(frozen=True)
class TrainBody:
    """A validated /train body. Inline rows that make a matrix are in `rows`, and the request's
    `data.vectors` is then None; rows that do not stay in `data.vectors`, for the submission to
    refuse with its message."""

    request: TrainRequest
    rows: np.ndarray | None = None


def parse_train_request(body: bytes) -> TrainBody:
    """Strictly, as the document's schema says: a JSON value of another type is refused, not
    converted (`"promote": 0`, `"epochs": "5"`). Module-level, so a worker process can run it."""
    apart = _parse_rows_apart(body)
    if apart is not None:
        return apart
    request = TrainRequest.model_validate_json(body, strict=True)
    if request.data.vectors is None:
        return TrainBody(request)
    try:
        rows = as_matrix(request.data.vectors)
    except InvalidInput:
        return TrainBody(request)
    data = request.data.model_copy(update={"vectors": None})
    return TrainBody(request.model_copy(update={"data": data}), rows)


def _parse_rows_apart(body: bytes) -> TrainBody | None:
    """The body's inline rows from simdjson's buffer of doubles and the rest validated by
    pydantic, for a body whose `data.vectors` is n rows of w numbers, no key twice, and rows
    finite in float32, and the rest valid with one row of zeros in their place; else None."""
    try:  # not JSON: ValueError; nested past the recursion limit: RecursionError (a RuntimeError)
        document = simdjson.Parser().parse(body)
        if not isinstance(document, simdjson.Object) or not _unique_keys(document):
            return None
        data = document.get("data")
        if not isinstance(data, simdjson.Object) or not _unique_keys(data):
            return None
        vectors = data.get("vectors")
        if not isinstance(vectors, simdjson.Array) or len(vectors) == 0:
            return None
        n = len(vectors)
        first = vectors[0]
        if not isinstance(first, simdjson.Array) or len(first) == 0:
            return None
        width = len(first)
        if any(not isinstance(row, simdjson.Array) or len(row) != width for row in vectors):
            return None
        values = np.frombuffer(vectors.as_buffer(of_type="d"), dtype=np.float64)
        rest: dict[str, Any] = {key: _plain(document[key]) for key in document if key != "data"}
        rest["data"] = {key: _plain(data[key]) for key in data if key != "vectors"}
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError):  # or of another shape
        return None
    stand_in = orjson.dumps({**rest, "data": {**rest["data"], "vectors": [[0.0] * width]}})
    # Every `[` of the body is either the rest's or one of the rows': none nested in a row.
    if body.count(b"[") != stand_in.count(b"[") - 2 + n + 1 or values.size != n * width:
        return None
    with np.errstate(over="ignore"):
        rows = values.reshape(n, width).astype(np.float32)
    try:
        rules.check_finite(rows)
        request = TrainRequest.model_validate_json(stand_in, strict=True)
    except (InvalidInput, ValidationError):
        return None  # refused: the whole body's path words it, with the values as sent
    without_rows = request.data.model_copy(update={"vectors": None})
    return TrainBody(request.model_copy(update={"data": without_rows}), rows)


def _unique_keys(obj: Any) -> bool:
    keys = list(obj.keys())
    return len(set(keys)) == len(keys)


def _plain(value: Any) -> Any:
    """A simdjson value as Python objects; ValueError for an object naming a key twice (pydantic
    would keep the last)."""
    if isinstance(value, simdjson.Object):
        if not _unique_keys(value):
            raise ValueError("a key given twice")
        return {key: _plain(value[key]) for key in value}
    if isinstance(value, simdjson.Array):
        return [_plain(item) for item in value]
    return value


async def read_train_request(request: Request) -> TrainBody:
    settings: Settings = request.app.state.settings
    cap = settings.max_train_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:  # a chunked body, or one longer than it said
            raise _too_large(cap)
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        return await offload.parse(request.scope, size, parse_train_request, body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from None


TrainBodyDep = Annotated[TrainBody, Depends(read_train_request)]
