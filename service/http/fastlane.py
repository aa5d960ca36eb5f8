"""The inference fast lane: the innermost middleware, serving the four inference routes without
FastAPI's per-request work.

Profiling a batch-1 /score put FastAPI's machinery (route matching, solving the dependency tree,
validating parameters, the exception and exit-stack wrappers) at about twice the cost of the
request's own work. The lane sits inside the middleware stack, right around the router, so every
middleware (the body limit, metrics, and whatever is added later) sees its requests as it sees
any other; only the router is skipped. For `POST /encode`, `/decode`, `/reconstruct` and `/score`
it resolves the runtime and reads the batch with the same functions as the routes'
dependencies (service/http/deps.py) and awaits the very endpoint functions of
service/http/routes/inference.py, so both ways run the same code from the body on.

It only takes requests it can read at a glance: a query string with nothing but well-formed
`model`, `version`, `threshold`, `explain` and `top`. Anything else goes to FastAPI, so unusual
requests keep FastAPI's exact validation and messages. The route tests run both ways, and each
request records which way it went in `scope["state"]["lane"]`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import AeserveError
from core.settings import Settings
from service.http.auth import check_key
from service.http.bodies import RowCount, is_npy
from service.http.deps import Batch, BatchSchema, decode_batch, resolve_runtime
from service.http.error_handlers import error_response
from service.http.routes import inference
from service.http.schemas import DecodeRequest, EncodeRequest, ReconstructRequest, ScoreRequest
from service.observability.metrics import Metrics

Endpoint = Callable[..., Awaitable[Response]]
LANE_FAST = "fast"
LANE_FASTAPI = "fastapi"
_TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})
_FALSE = frozenset({"0", "false", "off", "no", "f", "n"})


@dataclass(frozen=True)
class _Route:
    path: str  # what the metrics middleware labels the request with, as for the FastAPI route
    schema: BatchSchema
    endpoint: Endpoint
    wants_metrics: bool = False


_ROUTES = {
    "/encode": _Route("/encode", EncodeRequest, inference.encode),
    "/decode": _Route("/decode", DecodeRequest, inference.decode),
    "/reconstruct": _Route("/reconstruct", ReconstructRequest, inference.reconstruct),
    "/score": _Route("/score", ScoreRequest, inference.score, wants_metrics=True),
}


@dataclass(frozen=True)
class _Query:
    model: str | None = None
    version: int | None = None
    threshold: float | None = None
    explain: bool = False
    top: int | None = None


def _read_query(raw: bytes) -> _Query | None:
    """The inference query parameters, or None where FastAPI should judge the query string."""
    if not raw:
        return _Query()
    values = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    model = values.pop("model", None)
    version = values.pop("version", None)
    threshold = values.pop("threshold", None)
    explain = values.pop("explain", None)
    top = values.pop("top", None)
    if values or model == "":
        return None
    for whole in (version, top):
        # Longer than 18 digits goes to FastAPI, whose message names it (int() refuses 4300+).
        digits = whole is not None and whole.isascii() and whole.isdigit() and len(whole) <= 18
        if whole is not None and not (digits and int(whole) >= 1):
            return None
    number = None
    if threshold is not None:
        try:
            number = float(threshold)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
    flag = False
    if explain is not None:
        if explain.lower() not in _TRUE | _FALSE:
            return None
        flag = explain.lower() in _TRUE
    return _Query(model, int(version) if version else None, number, flag, int(top) if top else None)


class InferenceFastLane:
    """ASGI middleware: serves the requests `takes` accepts, hands every other one on."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app  # the rest of the stack: FastAPI's exception middleware and router
        self.fastapi = fastapi  # its `state` holds the settings, metrics and registry

    def takes(self, scope: Scope) -> tuple[_Route, _Query] | None:
        if scope["type"] != "http":
            return None
        route = _ROUTES.get(scope["path"])
        if route is None or scope["method"] != "POST":
            return None
        query = _read_query(scope["query_string"])
        return None if query is None else (route, query)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = self.takes(scope)
        if taken is None:
            scope.setdefault("state", {})["lane"] = LANE_FASTAPI
            await self.app(scope, receive, send)
            return
        route, query = taken
        # What the metrics middleware labels the request with, as for the FastAPI route.
        scope["route"] = route
        scope.setdefault("state", {})["lane"] = LANE_FAST
        try:
            response = await self._serve(route, query, scope, receive)
        except AeserveError as exc:
            # Rendered here: FastAPI's exception middleware is inside, not around, the lane.
            # Anything else propagates to the server-error middleware, as from a route.
            response = error_response(Request(scope), exc.status_code, exc.message, exc.headers)
        if response is not None:  # None: the client left before sending its body
            await response(scope, receive, send)

    async def _serve(
        self, route: _Route, query: _Query, scope: Scope, receive: Receive
    ) -> Response | None:
        headers = dict(scope["headers"])
        state = self.fastapi.state
        settings: Settings = state.settings
        if settings.inference_requires_key:
            check_key(settings, _header(headers, b"authorization"))
        runtime = await resolve_runtime(scope, query.model, query.version)
        content_type = _header(headers, b"content-type") or ""
        rows = None if is_npy(content_type) else RowCount(runtime.options.max_batch)
        body = await _read_body(receive, rows)
        if body is None:
            return None
        metrics: Metrics = state.metrics
        batch: Batch = await decode_batch(
            scope,
            body,
            content_type,
            route.schema,
            runtime,
            metrics,
            route.path,
            query.threshold,
            query.explain,
            query.top,
            rows.brackets if rows is not None else None,  # counted as it arrived
        )
        arguments: dict[str, Any] = {
            "runtime": runtime,
            "batch": batch,
            "accept": _header(headers, b"accept"),
        }
        if route.wants_metrics:
            arguments["metrics"] = metrics
        return await route.endpoint(**arguments)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _read_body(receive: Receive, rows: RowCount | None) -> bytes | None:
    """The whole body, None if the client left; the body-limit middleware around the lane
    raises past the limit, `rows` (a JSON body) once it holds too many rows."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if rows is None or rows.keep(chunk):
            chunks.append(chunk)
        else:
            chunks.clear()
        if not message.get("more_body", False):
            break
    if rows is not None:
        rows.check()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
