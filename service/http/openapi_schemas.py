"""JSON schemas of request bodies documented by hand (`openapi_extra`), made valid in OpenAPI.

Pydantic's `model_json_schema()` puts nested models under a local `$defs` and points at them with
`#/$defs/…`; inside an OpenAPI document that pointer is read from the document's root, where there
is no `$defs`, and ReDoc refuses the whole document. These schemas are inlined instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_PREFIX = "#/$defs/"


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with every `#/$defs/…` reference replaced by its definition."""
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith(_PREFIX):
                rest = {key: value for key, value in node.items() if key != "$ref"}
                return {**resolve(definitions[reference[len(_PREFIX) :]]), **resolve(rest)}
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
