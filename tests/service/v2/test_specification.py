"""Answers checked against the protocol's own OpenAPI text (tests/data/schemas), not only our
reading of it. Its two known slips (the ready body, the `/v2/` path) touch nothing here."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient

from tests.data import SCHEMAS

SPEC = "open_inference_rest.yaml"
ROWS = [[0.5, 1.0, 1.5, 2.0], [0.0, -0.5, 3.0, 0.25]]


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    """The specification's schemas, kept in the repository (tests/data/README.md)."""
    spec: dict[str, Any] = yaml.safe_load((SCHEMAS / SPEC).read_text())
    return spec["components"]


def check(components: dict[str, Any], schema: str, document: Any) -> None:
    root = {"$ref": f"#/components/schemas/{schema}", "components": components}
    jsonschema.Draft7Validator(root).validate(document)


def test_server_metadata(client: TestClient, components: dict[str, Any]) -> None:
    check(components, "metadata_server_response", client.get("/v2").json())


@pytest.mark.parametrize("path", ["/v2/models/tiny", "/v2/models/tiny.decoder/versions/2"])
def test_model_metadata(client: TestClient, components: dict[str, Any], path: str) -> None:
    check(components, "metadata_model_response", client.get(path).json())


def test_inference_request_and_response(client: TestClient, components: dict[str, Any]) -> None:
    request = {
        "id": "1",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": ROWS}],
        "outputs": [{"name": "scores"}, {"name": "codes"}],
    }
    check(components, "inference_request", request)
    response = client.post("/v2/models/tiny/infer", json=request)
    assert response.status_code == 200
    check(components, "inference_response", response.json())


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/v2/models/nope", "metadata_model_error_response"),
        ("/v2/models/tiny/infer", "inference_error_response"),
    ],
)
def test_errors(client: TestClient, components: dict[str, Any], path: str, schema: str) -> None:
    response = (
        client.post(path, json={"inputs": []}) if path.endswith("infer") else client.get(path)
    )
    assert response.status_code in (400, 404)
    check(components, schema, response.json())
