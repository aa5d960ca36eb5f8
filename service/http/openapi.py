"""The OpenAPI document behind /docs, with request examples that work on the models served.

A fixed example cannot fit every model: rows are as wide as the model's input. So the examples
of /encode, /reconstruct, /score (rows of d values) and /decode (codes of k values) are written
for the default model each time the document is asked for, and say which model they fit; before a
model is loaded they are a small illustration that says it is one. The rows' schemas say the
default model's width too (service/http/openapi_shapes.py), each operation's `security` what
the settings require (service/http/openapi_security.py), and its links which answer names the
resource the next call takes (service/http/openapi_links.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

from fastapi import FastAPI

from core.errors import AeserveError
from core.settings import Settings
from service.http.openapi_errors import document_errors
from service.http.openapi_links import document_links
from service.http.openapi_security import document_security
from service.http.openapi_shapes import shape_rows
from service.inference.registry import ModelRegistry

ROUTES = {"/encode": "vectors", "/reconstruct": "vectors", "/score": "vectors", "/decode": "codes"}
ILLUSTRATIVE = {"vectors": [[0.0, 0.25, 0.5, 1.0]], "codes": [[0.1, -0.3]]}


def install(app: FastAPI) -> None:
    """Wrap the app's `openapi()` (FastAPI's, cached) so each call fills in fitting examples
    and shapes, the key as the settings require it, the error answers the service gives
    (service/http/openapi_errors.py) and the links between operations."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        registry: ModelRegistry | None = getattr(app.state, "registry", None)
        settings: Settings = app.state.settings
        document = document_security(with_examples(generate(), registry), settings)
        return document_links(document_errors(document))

    app.openapi = openapi  # type: ignore[method-assign]


class DefaultModel(NamedTuple):
    """What the document says of the model a request without `?model=` gets."""

    label: str
    input_dim: int
    latent_dim: int | None
    max_rows: int

    def width(self, field: str) -> int | None:
        """Values a row of `field` holds; None for codes of a model without them."""
        return self.latent_dim if field == "codes" else self.input_dim


def with_examples(document: dict[str, Any], registry: ModelRegistry | None) -> dict[str, Any]:
    """A copy of `document` whose inference request bodies carry a named example and, once the
    default model is loaded, rows as wide as it expects."""
    fitted = copy.deepcopy(document)
    default = _default_model(registry)
    for path, field in ROUTES.items():
        content = (
            fitted["paths"]
            .get(path, {})
            .get("post", {})
            .get("requestBody", {})
            .get("content", {})
            .get("application/json")
        )
        if content is None:
            continue
        content["examples"] = _example(path, field, default)
        width = default.width(field) if default else None
        if default and width:
            shape_rows(content["schema"], field, width, default.max_rows, default.label)
    return fitted


def _default_model(registry: ModelRegistry | None) -> DefaultModel | None:
    """The model a request without `?model=` gets, if one is loaded."""
    if registry is None:
        return None
    try:
        runtime = registry.get()
    except AeserveError:  # none loaded yet, or no default among several models
        return None
    return DefaultModel(
        runtime.label, runtime.input_dim, runtime.latent_dim, runtime.options.max_batch
    )


def _example(path: str, field: str, default: DefaultModel | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"explain": True} if path == "/score" else {}
    width = default.width(field) if default else None
    if default is None or width is None:  # no codes: /decode is a 409
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
    return {
        "default-model": {
            "summary": f"One row of zeros for the default model ({default.label}, {width} values)",
            "description": f"Fits the default model, {default.label}: every row has {width} "
            "values. Pick another model with `?model=` and send rows as wide as it expects "
            "(GET /models).",
            "value": {field: [[0.0] * width], **extra},
        }
    }
