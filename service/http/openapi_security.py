"""Which operations of the OpenAPI document need the API key, as the server's settings make it.

FastAPI declares the bearer scheme on every route with the key's dependency, whether or not the
dependency will ask for the key. The document says what this server requires: nothing without a
key set, and the inference routes only with `inference_requires_key`.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings

INFERENCE = frozenset({"/encode", "/decode", "/reconstruct", "/score"})
"""Besides /v2's infer routes: the routes behind `inference_requires_key`."""


def needs_key(path: str, settings: Settings) -> bool:
    """Whether an operation on `path` that declares the key needs it under `settings`."""
    if settings.api_key is None:
        return False
    if path in INFERENCE or (path.startswith("/v2/") and path.endswith("/infer")):
        return settings.inference_requires_key
    return True


def document_security(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Drop (in place, and return `document`) the `security` of each operation that the
    settings leave open."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if operation.get("security") and not needs_key(path, settings):
                del operation["security"]
    return document
