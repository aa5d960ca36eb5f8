"""The error answers of the OpenAPI document, as the service gives them.

FastAPI documents a 422 on every route with parameters as its `HTTPValidationError` array; this
service answers every error as `{"detail": "<message>"}` (service/http/error_handlers.py), and on
/v2 as `{"error": "<message>"}` with 400 where FastAPI would say 422. What the middleware and
FastAPI's own readers answer is documented too: 413 for any request body (the body limit), 400 for
a multipart body that cannot be parsed, 401 for every route behind the API key. The v2 binary
body's `Inference-Header-Content-Length` header is declared on the infer routes.
"""

from __future__ import annotations

from typing import Any

from service.v2.wire import HEADER

_ERROR = "#/components/schemas/service__http__schemas__ErrorResponse"
_V2_ERROR = "#/components/schemas/service__v2__schemas__ErrorResponse"
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")

_DESCRIPTIONS = {
    "400": "Bad request: a body that cannot be parsed",
    "401": "The API key is missing or wrong (`WWW-Authenticate: Bearer`)",
    "413": "The body is larger than the server takes",
    "422": "The request's data cannot be used; the message says why",
}
_INFERENCE_HEADER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "integer", "minimum": 0},
    "description": "Required with a binary body (`application/octet-stream`): the length in "
    "bytes of the JSON header that starts the body; the tensors' bytes follow it.",
}


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite `document` (in place, and return it) so each operation's error answers carry the
    service's error schema and every status the service can answer is listed."""
    for path, operations in document.get("paths", {}).items():
        v2 = path.startswith("/v2")
        for operation in operations.values():
            _document_operation(operation, v2)
            if v2 and path.endswith("/infer"):
                _declare_header(operation)
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    return document


def _document_operation(operation: dict[str, Any], v2: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    reference = _V2_ERROR if v2 else _ERROR
    validation = responses.pop("422", None)
    if validation is not None:
        responses["400" if v2 else "422"] = _error(reference, "400" if v2 else "422")
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        responses.setdefault("413", _error(reference, "413"))
    if "multipart/form-data" in body:
        responses.setdefault("400", _error(reference, "400"))
    if operation.get("security"):
        responses.setdefault("401", _error(reference, "401"))
    else:  # open under the server's settings (service/http/openapi_security.py)
        responses.pop("401", None)
    for status, response in responses.items():
        if status.startswith("4") or status.startswith("5"):
            response["content"] = {"application/json": {"schema": {"$ref": reference}}}
    operation["responses"] = dict(sorted(responses.items()))


def _error(reference: str, status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": reference}}},
    }


def _declare_header(operation: dict[str, Any]) -> None:
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    if not any(p.get("name") == HEADER and p.get("in") == "header" for p in parameters):
        parameters.append(dict(_INFERENCE_HEADER))
