"""The shape of the inference routes' rows in the OpenAPI document, for the default model.

Pydantic knows only that `vectors` (or `codes`) is a list of rows of numbers. What the service
takes is narrower: rows exactly as wide as the model expects, at most `max_batch` of them, and
values finite in float32. Once the default model is loaded, the document says so for it; a
request naming another model with `?model=` sends rows as wide as that one expects.
"""

from __future__ import annotations

from typing import Any

from core.vectors import FLOAT32_MAX

VALUE: dict[str, Any] = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}


def rows_schema(field: str, width: int, max_rows: int, model: str) -> dict[str, Any]:
    """A batch of rows of `width` values (or one bare row), as the service reads `field`."""
    row = {"type": "array", "items": VALUE, "minItems": width, "maxItems": width}
    what = "code" if field == "codes" else "row"
    return {
        "anyOf": [
            {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows},
            {**row, "description": f"One {what}: a batch of one."},
        ],
        "title": field.capitalize(),
        "description": f"Batch of {what}s, each of {width} values for the default model "
        f"({model}); with `?model=`, as wide as that model's "
        f"`{'latent_dim' if field == 'codes' else 'input_dim'}` (GET /models). At most "
        f"{max_rows} {what}s, every value finite in float32. With an `application/x-npy` body, "
        "the array.",
        "examples": [[[0.0] * width]],
    }


def shape_rows(body: dict[str, Any], field: str, width: int, max_rows: int, model: str) -> None:
    """Set (in place) the schema of `field` in a JSON request body's schema."""
    properties = body.get("properties", {})
    if field in properties:
        properties[field] = rows_schema(field, width, max_rows, model)
