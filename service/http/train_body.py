"""The POST /train body: read under its own cap and validated off the event loop.

FastAPI validated a /train body of up to the body limit (64 MiB of inline rows) on the event loop.
Here the body is refused past `max_train_body_bytes` as it arrives (413 naming the /datasets
upload, the way for larger data), and validated on a thread for a body over `inline_body_bytes`.
pydantic still holds the GIL while it validates, so the cap is what bounds the stall. A
validation error is raised as FastAPI's own, so its messages are the ones FastAPI gave.

Inline rows leave the parse as one float32 matrix, not as lists of Python floats: a worker
process's lists were unpickled into millions of float objects in the API process, whose freed
memory the allocator kept (the soak's RSS grew by a step at every inline /train).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

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
    request = TrainRequest.model_validate_json(body, strict=True)
    if request.data.vectors is None:
        return TrainBody(request)
    try:
        rows = as_matrix(request.data.vectors)
    except InvalidInput:
        return TrainBody(request)
    data = request.data.model_copy(update={"vectors": None})
    return TrainBody(request.model_copy(update={"data": data}), rows)


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
