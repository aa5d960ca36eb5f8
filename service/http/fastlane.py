"""The inference fast lane: the four inference routes served without FastAPI's per-request work.

Profiling a batch-1 /score put FastAPI's machinery (route matching, solving the dependency tree,
validating parameters, the exception and exit-stack wrappers) at about twice the cost of the
request's own work, and the middleware stack around it (five wrappers, each with its own `send`)
at a fifth more. The fast lane stands in front of all of it: `AeserveApp.__call__` hands it the
plain requests to `POST /encode`, `/decode`, `/reconstruct` and `/score`, and it does inline what
the stack would have done for them (the body limit, metrics, the catch-all 500), resolves the
routes' dependencies by hand and awaits the very endpoint functions of
service/routes/inference.py, so both ways run the same code from the body on.

It only takes requests it can read at a glance: a query string with nothing but well-formed
`model`, `version`, `threshold` and `explain`. Anything else goes to FastAPI, so unusual
requests keep FastAPI's exact validation and messages. The route tests run both ways.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.errors import AeserveError, NotReady
from core.settings import Settings
from service.http.auth import check_key
from service.http.body_limit import BodyTooLarge, declared_too_large, reject
from service.http.deps import Batch, BatchSchema, build_batch
from service.http.error_handlers import error_response, on_unexpected_error
from service.http.routes import inference
from service.http.schemas import DecodeRequest, EncodeRequest, ReconstructRequest, ScoreRequest
from service.inference.registry import ModelRegistry
from service.observability.metrics import Metrics

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
    """Serves the inference requests `takes` accepts; the app's front calls it for those only."""

    def __init__(self, fastapi: FastAPI) -> None:
        self.fastapi = fastapi  # its `state` holds the settings, metrics and registry

    def takes(self, scope: Scope) -> tuple[_Route, _Query] | None:
        route = _ROUTES.get(scope["path"])
        if route is None or scope["method"] != "POST":
            return None
        query = _read_query(scope["query_string"])
        return None if query is None else (route, query)

    async def __call__(
        self, route: _Route, query: _Query, scope: Scope, receive: Receive, send: Send
    ) -> None:
        start = time.perf_counter()
        state = self.fastapi.state
        settings: Settings = state.settings
        if declared_too_large(scope, settings.max_body_bytes):
            await reject(scope, send, settings.max_body_bytes)
            return
        try:
            response = await self._serve(route, query, scope, receive, settings)
        except AeserveError as exc:
            response = error_response(Request(scope), exc.status_code, exc.message)
        except BodyTooLarge:
            await reject(scope, send, settings.max_body_bytes)
            return
        except Exception as exc:  # what ServerErrorMiddleware does for FastAPI's routes
            response = await on_unexpected_error(Request(scope), exc)
        if response is None:  # the client left before sending its body
            return
        await response(scope, receive, send)
        request_state = scope.get("state", {})
        state.metrics.observe_request(
            route.path,
            "POST",
            str(request_state.get("model_name", "")),
            str(request_state.get("model_version", "")),
            str(response.status_code),
            time.perf_counter() - start,
        )

    async def _serve(
        self, route: _Route, query: _Query, scope: Scope, receive: Receive, settings: Settings
    ) -> Response | None:
        headers = dict(scope["headers"])
        state = self.fastapi.state
        if settings.inference_requires_key:
            check_key(settings, _header(headers, b"authorization"))
        registry: ModelRegistry | None = getattr(state, "registry", None)
        if registry is None:
            raise NotReady("the server is starting; no model is loaded yet")
        runtime = await registry.get_async(query.model, query.version)
        request_state = scope.setdefault("state", {})
        request_state["model_name"] = runtime.name
        request_state["model_version"] = runtime.version
        body = await _read_body(receive, settings.max_body_bytes)
        if body is None:
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


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, None if the client left; `BodyTooLarge` past `max_bytes`."""
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
