"""The request schemas of /openapi.json say what the service takes: a body the document calls
valid is answered, one it calls invalid is refused. Rows are as wide as the default model's
(tiny: 4 values, 2 for codes), at most max_batch (100 here) of them, finite in float32; /train
takes exactly one of its rows or a dataset id."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

ZEROS = [0.0, 0.0, 0.0, 0.0]
FLOAT32_PAST_MAX = 3.5e38


def body_schema(document: dict[str, Any], path: str) -> jsonschema.Draft202012Validator:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    # `$ref`s point into the document's components: resolve them against the whole document.
    return jsonschema.Draft202012Validator(
        {**schema["schema"], "components": document["components"]}
    )


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


@pytest.mark.parametrize(
    ("path", "body", "valid"),
    [
        ("/score", {"vectors": [ZEROS]}, True),
        ("/score", {"vectors": ZEROS}, True),  # one bare row: a batch of one
        ("/score", {"vectors": [ZEROS] * 100}, True),
        ("/score", {"vectors": [0.0]}, False),
        ("/score", {"vectors": [ZEROS, [0.0] * 5]}, False),
        ("/score", {"vectors": []}, False),
        ("/score", {"vectors": [ZEROS] * 101}, False),
        ("/score", {"vectors": [[FLOAT32_PAST_MAX, 0.0, 0.0, 0.0]]}, False),
        ("/encode", {"vectors": [[0.0] * 3]}, False),
        ("/reconstruct", {"vectors": [ZEROS]}, True),
        ("/decode", {"codes": [[0.0, 0.0]]}, True),
        ("/decode", {"codes": [ZEROS]}, False),
    ],
)
def test_inference_rows_are_as_the_document_says(
    client: TestClient, document: dict[str, Any], path: str, body: dict[str, Any], valid: bool
) -> None:
    assert body_schema(document, path).is_valid(body) is valid
    response = client.post(path, json=body)
    assert response.status_code == (200 if valid else 422), response.text


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        ({}, "m", "data: Value error, give exactly one of 'vectors' or 'dataset'"),
        (
            {"vectors": [ZEROS] * 10, "dataset": "0" * 32},
            "m",
            "data: Value error, give exactly one of 'vectors' or 'dataset'",
        ),
        (
            {"dataset": "abc"},
            "m",
            "data.dataset: dataset 'abc' is not a dataset id (32 hex digits)",
        ),
        (
            {"vectors": [ZEROS] * 9},
            "m",
            "data has 9 rows; training needs at least 10",
        ),
        (
            {"vectors": [ZEROS] * 10},
            "No Spaces",
            "model name 'No Spaces' is invalid: use 1-64 characters from a-z, 0-9, '_', '.', "
            "'-', starting with a letter or digit",
        ),
    ],
)
def test_a_train_body_the_document_refuses_is_refused(
    client: TestClient,
    document: dict[str, Any],
    auth: dict[str, str],
    data: dict[str, Any],
    name: str,
    message: str,
) -> None:
    body = {"name": name, "data": data}
    assert not body_schema(document, "/train").is_valid(body)
    response = client.post("/train", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json() == {"detail": message}


def test_a_train_body_with_a_dataset_id_or_rows_is_valid(document: dict[str, Any]) -> None:
    schema = body_schema(document, "/train")
    assert schema.is_valid({"name": "m", "data": {"dataset": "0" * 32}})
    assert schema.is_valid({"name": "m", "data": {"dataset": "0" * 32, "vectors": None}})
    assert schema.is_valid({"name": "m", "data": {"vectors": [ZEROS] * 10}})


def test_uploads_are_documented_as_multipart(document: dict[str, Any]) -> None:
    for path in ("/import", "/datasets"):
        assert list(document["paths"][path]["post"]["requestBody"]["content"]) == [
            "multipart/form-data"
        ]
