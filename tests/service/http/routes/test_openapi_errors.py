"""/openapi.json documents the errors the service answers: `{"detail": …}` (`{"error": …}` on
/v2) for every error status, never FastAPI's HTTPValidationError array; every status a route
answers to an empty, unauthenticated or out-of-range request is listed for it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.http.routes.conftest import AUTH

ERROR = "#/components/schemas/service__http__schemas__ErrorResponse"
V2_ERROR = "#/components/schemas/service__v2__schemas__ErrorResponse"
NOT_CALLED = {"/metrics", "/jobs/{job_id}/events"}  # text answers; events stream until done


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def test_no_fastapi_validation_schema_remains(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert "#/components/schemas/ValidationError" not in text


def test_every_error_answer_has_the_service_error_schema(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        expected = V2_ERROR if path.startswith("/v2") else ERROR
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": expected}, (method, path, status)
        if path.startswith("/v2"):
            assert "422" not in operation["responses"], (method, path)  # v2 says 400


def test_what_fastapi_and_the_middleware_answer_is_listed(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        content = operation.get("requestBody", {}).get("content", {})
        if content:
            assert "413" in responses, (method, path)
        if "multipart/form-data" in content:
            assert "400" in responses, (method, path)
        if operation.get("security"):
            assert "401" in responses, (method, path)
    assert "400" in document["paths"]["/datasets"]["post"]["responses"]


def test_the_v2_binary_header_is_declared(document: dict[str, Any]) -> None:
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        parameters = document["paths"][path]["post"]["parameters"]
        (header,) = [p for p in parameters if p["name"] == "Inference-Header-Content-Length"]
        assert header["in"] == "header" and header["schema"]["type"] == "integer"


@pytest.mark.parametrize(
    ("headers", "version"), [({}, "1"), (AUTH, "1"), (AUTH, "0")], ids=["no-key", "key", "v0"]
)
def test_each_route_answers_only_what_it_documents(
    client: TestClient, document: dict[str, Any], headers: dict[str, str], version: str
) -> None:
    """An empty request to every operation, with and without the key, and with version 0."""
    for path, method, operation in operations(document):
        if path in NOT_CALLED:
            continue
        url = path.format(name="tiny", version=version, job_id="none", dataset="none")
        response = client.request(method, url, headers=headers)
        status = str(response.status_code)
        if response.status_code < 400:
            assert status in operation["responses"], (method, url, status)
            continue
        assert status in operation["responses"], (method, url, status, response.text)
        key = "error" if path.startswith("/v2") else "detail"
        body = response.json()
        assert list(body) == [key] and isinstance(body[key], str), (method, url, body)
