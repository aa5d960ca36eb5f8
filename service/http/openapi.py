"""The OpenAPI document behind /docs, with request examples that work on the models served.

A fixed example cannot fit every model: rows are as wide as the model's input. So the examples
of /encode, /reconstruct, /score (rows of d values) and /decode (codes of k values) are written
for the default model each time the document is asked for, and say which model they fit; before a
model is loaded they are a small illustration that says it is one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.errors import AeserveError
from service.http.openapi_errors import document_errors
from service.inference.registry import ModelRegistry

ROUTES = {"/encode": "vectors", "/reconstruct": "vectors", "/score": "vectors", "/decode": "codes"}
ILLUSTRATIVE = {"vectors": [[0.0, 0.25, 0.5, 1.0]], "codes": [[0.1, -0.3]]}


def install(app: FastAPI) -> None:
    """Wrap the app's `openapi()` (FastAPI's, cached) so each call fills in fitting examples,
    with the error answers the service gives (service/http/openapi_errors.py)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        registry: ModelRegistry | None = getattr(app.state, "registry", None)
        return document_errors(with_examples(generate(), registry))

    app.openapi = openapi  # type: ignore[method-assign]


def with_examples(document: dict[str, Any], registry: ModelRegistry | None) -> dict[str, Any]:
    """A copy of `document` whose inference request bodies carry a named example."""
    fitted = copy.deepcopy(document)
    widths = _default_model_widths(registry)
    for path, field in ROUTES.items():
        content = (
            fitted["paths"]
            .get(path, {})
            .get("post", {})
            .get("requestBody", {})
            .get("content", {})
            .get("application/json")
        )
        if content is not None:
            content["examples"] = _example(path, field, widths)
    return fitted


def _default_model_widths(registry: ModelRegistry | None) -> tuple[str, int, int | None] | None:
    """(label, d, k) of the model a request without `?model=` gets, if one is loaded."""
    if registry is None:
        return None
    try:
        runtime = registry.get()
    except AeserveError:  # none loaded yet, or no default among several models
        return None
    return runtime.label, runtime.input_dim, runtime.latent_dim


def _example(path: str, field: str, widths: tuple[str, int, int | None] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"explain": True} if path == "/score" else {}
    if widths is None or (field == "codes" and widths[2] is None):  # no codes: /decode is a 409
        value = ILLUSTRATIVE[field]
        return {
            "illustrative": {
                "summary": f"Illustrative: {len(value[0])} values a row",
                "description": f"Only the shape of a request: send rows as wide as the model "
                f"expects (`{'latent_dim' if field == 'codes' else 'input_dim'}` in GET "
                f"/models); this one fits a model of that width only.",
                "value": {field: value, **extra},
            }
        }
    label, input_dim, latent_dim = widths
    width = latent_dim if field == "codes" and latent_dim is not None else input_dim
    return {
        "default-model": {
            "summary": f"One row of zeros for the default model ({label}, {width} values)",
            "description": f"Fits the default model, {label}: every row has {width} values. "
            "Pick another model with `?model=` and send rows as wide as it expects "
            "(GET /models).",
            "value": {field: [[0.0] * width], **extra},
        }
    }
