"""One place that turns exceptions into responses: `{"detail": …}`, or `{"error": …}` on /v2."""

from __future__ import annotations

import logging

import pydantic_core
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount

from core.errors import AeserveError
from service.http.encoding import dump_json

log = logging.getLogger("aeserve.errors")


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    key = "error" if request.url.path.startswith("/v2") else "detail"
    status = 400 if key == "error" and status == 422 else status
    return Response(
        dump_json({key: message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def invalid_json_message(document: str | bytes) -> str:
    """pydantic-core's words for a body that is not JSON, as /score's own parser gives them, so
    every route says the same thing about the same mistake."""
    try:
        pydantic_core.from_json(document)
    except ValueError as exc:
        return f"Invalid JSON: {exc}"
    return "Invalid JSON"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # FastAPI's json.loads failed; body is the text
            parts.append(invalid_json_message(exc.body))
            continue
        if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
            parts.append(invalid_json_message(b""))  # an empty body, as the inference routes say
            continue
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg")))
    return "; ".join(dict.fromkeys(parts)) or "invalid request"


async def on_aeserve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AeserveError)
    if exc.status_code >= 500 and exc.status_code not in (503, 504):  # load, not faults
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(request, exc.status_code, exc.message, exc.headers)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 422, _validation_message(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = error_response(request, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers. Starlette's 405 names only those of the first
    route matching the path, and a path such as /jobs/{job_id} has a GET and a DELETE route."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s raised", request.method, request.url.path)
    return error_response(request, 500, "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AeserveError, on_aeserve_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
