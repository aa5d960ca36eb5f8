"""The inference fast lane: the four inference routes served without FastAPI's per-request work.

Profiling a batch-1 /score put FastAPI's machinery (route matching, solving the dependency tree,
validating parameters, the exception and exit-stack wrappers) at about twice the cost of the
request's own work, parsing, inference and response included. This middleware, the innermost
one, resolves the dependencies of `POST /encode`, `/decode`, `/reconstruct` and `/score` by
hand and awaits the very endpoint functions of service/routes/inference.py, so both ways run the
same code from the body on.

It only takes requests it can read at a glance: a query string with nothing but well-formed
`model`, `version`, `threshold` and `explain`. Anything else goes on to the FastAPI route, so
unusual requests keep FastAPI's exact validation and messages. The route tests run both ways.
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

from service.auth import check_key
from service.deps import Batch, BatchSchema, build_batch
from service.errors import AeserveError, NotReady
from service.handlers import error_response
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.routes import inference
from service.schemas import DecodeRequest, EncodeRequest, ReconstructRequest, ScoreRequest
from service.settings import Settings

Endpoint = Callable[..., Awaitable[Response]]
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


def _read_query(raw: bytes) -> _Query | None:
    """The inference query parameters, or None where FastAPI should judge the query string."""
    if not raw:
        return _Query()
    values = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    model = values.pop("model", None)
    version = values.pop("version", None)
    threshold = values.pop("threshold", None)
    explain = values.pop("explain", None)
    if values or model == "":
        return None
    if version is not None and not (version.isascii() and version.isdigit() and int(version) >= 1):
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
    return _Query(model, int(version) if version else None, number, flag)


class InferenceFastLane:
    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi  # its `state` holds the settings, metrics and registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        query = _read_query(scope["query_string"]) if route is not None else None
        if route is None or query is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await self._serve(route, query, scope, receive)
        except AeserveError as exc:
            response = error_response(Request(scope), exc.status_code, exc.message)
        if response is not None:
            await response(scope, receive, send)

    async def _serve(
        self, route: _Route, query: _Query, scope: Scope, receive: Receive
    ) -> Response | None:
        scope["route"] = route  # labels the metrics, as Starlette does with the route it matched
        headers = dict(scope["headers"])
        state = self.fastapi.state
        settings: Settings = state.settings
        if settings.inference_requires_key:
            check_key(settings, _header(headers, b"authorization"))
        registry: ModelRegistry | None = getattr(state, "registry", None)
        if registry is None:
            raise NotReady("the server is starting; no model is loaded yet")
        runtime = await registry.get_async(query.model, query.version)
        request_state = scope.setdefault("state", {})
        request_state["model_name"] = runtime.name
        request_state["model_version"] = runtime.version
        body = await _read_body(receive)
        if body is None:  # the client left
            return None
        metrics: Metrics = state.metrics
        content_type = _header(headers, b"content-type") or ""
        batch: Batch = build_batch(
            body,
            content_type,
            route.schema,
            runtime,
            metrics,
            route.path,
            query.threshold,
            query.explain,
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


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
