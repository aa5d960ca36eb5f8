"""Every bad input a client can send: its status and its exact message, never a 500."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

ROW = [0.1, 0.2, 0.3, 0.4]


def detail(response) -> str:
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert "Traceback" not in body["detail"]
    return body["detail"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"vectors": []}, 422, "vectors: List should have at least 1 item after validation, not 0"),
        (
            {"vectors": [ROW, [1.0, 2.0]]},
            422,
            "vectors: row 1 has 2 values; model 'tiny' v1 expects 4",
        ),
        (
            {"vectors": [[1.0, 2.0, 3.0]]},
            422,
            "vectors: row 0 has 3 values; model 'tiny' v1 expects 4",
        ),
        (
            {"vectors": [ROW, [1, "a", 2, 3]]},
            422,
            "vectors: row 1, column 1: Input should be a valid number",
        ),
        (
            {"vectors": [ROW, [1, None, 2, 3]]},
            422,
            "vectors: row 1, column 1: Input should be a valid number",
        ),
        (
            {"vectors": [[True, 1, 2, 3]]},
            422,
            "vectors: row 0, column 0: Input should be a valid number",
        ),
        ({"vectors": [ROW], "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ({"vectors": [ROW] * 101}, 422, "batch has 101 rows; the limit is 100"),
        ({}, 422, "vectors: Field required"),
        (
            {"vectors": [1.0, "a", 2, 3]},
            422,
            "vectors: row 0, column 1: Input should be a valid number",
        ),
        ({"vectors": [ROW[:2]]}, 422, "vectors: row 0 has 2 values; model 'tiny' v1 expects 4"),
        ({"vectors": ROW[:3]}, 422, "vectors: row 0 has 3 values; model 'tiny' v1 expects 4"),
        ({"vectors": [ROW], "threshold": "x"}, 422, "threshold: Input should be a valid number"),
        # JSON values of another type are refused, not converted: the schema says boolean, integer.
        ({"vectors": [ROW], "explain": 0}, 422, "explain: Input should be a valid boolean"),
        ({"vectors": [ROW], "explain": "true"}, 422, "explain: Input should be a valid boolean"),
        ({"vectors": [ROW], "top": "2"}, 422, "top: Input should be a valid integer"),
    ],
)
def test_bad_json_vectors(client: TestClient, body, status, message):
    response = client.post("/score", json=body)
    assert response.status_code == status
    assert detail(response) == message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers(client: TestClient, token):
    body = '{"vectors": [[0.1, 0.2, ' + token + ", 0.4]]}"
    response = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert detail(response) == "vectors: row 0, column 2: Input should be a finite number"


def test_invalid_json(client: TestClient):
    response = client.post("/score", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert detail(response).startswith("Invalid JSON")


def test_decode_wrong_latent_width(client: TestClient):
    response = client.post("/decode", json={"codes": [[0.1, 0.2, 0.3]]})
    assert response.status_code == 422
    assert detail(response) == "codes: row 0 has 3 values; model 'tiny' v1 expects 2"


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


NPY = {"content-type": "application/x-npy"}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"not npy", 400, "body is not a .npy array (missing the \\x93NUMPY magic string)"),
        (
            npy(np.zeros(4, dtype=np.float32)),
            400,
            ".npy array has shape (4,); send a 2-D array (rows × values)",
        ),
        (
            npy(np.array([["a"] * 4])),
            400,
            ".npy array has dtype <U1; send a numeric array (float32 is best)",
        ),
        (
            npy(np.zeros((2, 4), dtype=np.float32))[:-4],
            400,
            ".npy header says (2, 4) of float32 (32 bytes) but the body carries 28 bytes of data",
        ),
        (
            npy(np.zeros((2, 5), dtype=np.float32)),
            422,
            "row 0 has 5 values; model 'tiny' v1 expects 4",
        ),
        (npy(np.zeros((0, 4), dtype=np.float32)), 422, "batch is empty"),
        (
            npy(np.array([[0, 0, np.nan, 0]], dtype=np.float32)),
            422,
            "row 0, column 2 is NaN; values must be finite numbers",
        ),
    ],
)
def test_bad_npy_bodies(client: TestClient, payload, status, message):
    response = client.post("/score", content=payload, headers=NPY)
    assert response.status_code == status
    assert detail(response) == message


def test_unsupported_content_type(client: TestClient):
    response = client.post("/score", content=b"a,b", headers={"content-type": "text/csv"})
    assert response.status_code == 415
    assert detail(response) == (
        "unsupported Content-Type 'text/csv'; send application/json or application/x-npy"
    )


def test_body_over_the_limit_is_413_before_parsing(client: TestClient):
    response = client.post(
        "/score", content=b"x" * 200_001, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert detail(response) == "request body is larger than the limit of 200000 bytes"


def test_chunked_body_over_the_limit_is_413(client: TestClient):
    def chunks():
        for _ in range(30):
            yield b"x" * 10_000

    response = client.post("/score", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?model=nope", 404, "model 'nope' not found"),
        ("?model=Bad%20Name", 404, "model 'Bad Name' not found"),
        ("?model=tiny&version=9", 404, "model 'tiny' has no version 9"),
        ("?model=tiny&version=0", 422, "query.version: Input should be greater than or equal to 1"),
        (
            "?model=tiny&version=x",
            422,
            "query.version: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_unknown_model_or_version(client: TestClient, query, status, message):
    response = client.post(f"/score{query}", json={"vectors": [ROW]})
    assert response.status_code == status
    assert detail(response) == message


def test_wrong_method_and_path(client: TestClient):
    assert client.get("/score").status_code == 405
    assert detail(client.get("/nowhere")) == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/score", "POST"),
        ("PUT", "/jobs/none", "DELETE, GET"),
        ("OPTIONS", "/models/tiny/versions/1", "DELETE, GET"),
        ("PATCH", "/datasets", "GET, POST"),
        ("POST", "/v2/models/tiny", "GET"),
    ],
)
def test_a_405_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, allowed: str
):
    """Not only those of the first route matching it (RFC 9110: `Allow` on every 405)."""
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    key = "error" if path.startswith("/v2") else "detail"
    assert response.json() == {key: "Method Not Allowed"}
