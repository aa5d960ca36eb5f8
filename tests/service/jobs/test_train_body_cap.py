"""POST /train takes inline rows up to its own cap, `max_train_body_bytes`, well below the body
limit: a larger body is a 413 that points to the /datasets upload, refused as it arrives (by its
Content-Length, or counted when it is chunked) and never validated. A body within the cap is
validated off the event loop (in a worker process) with FastAPI's messages, and the OpenAPI document keeps its schema."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app
from service.http.train_body import parse_train_request
from tests.service.jobs.helpers import API_KEY, AUTH

CAP = 64 * 1024
TOO_LARGE = {
    "detail": f"a /train body may hold {CAP} bytes; upload larger data with POST /datasets and "
    "name it in data.dataset"
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        model_repository=tmp_path_factory.mktemp("train-cap"),
        api_key=API_KEY,
        max_train_body_bytes=CAP,
        inline_body_bytes=1024,  # bodies over it are validated off the event loop:
        process_body_bytes=1024,  # in a worker process
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _body(rows: int) -> bytes:
    vectors = [[0.25, 0.5, 0.75, 1.0]] * rows
    return json.dumps({"name": "m", "data": {"vectors": vectors}}).encode()


def test_a_body_over_the_cap_is_413(client: TestClient) -> None:
    body = _body(4000)
    assert CAP < len(body) < Settings().max_body_bytes
    answer = client.post("/train", content=body, headers=AUTH)
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE


def test_a_chunked_body_over_the_cap_is_413(client: TestClient) -> None:
    body = _body(4000)
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
    answer = client.post("/train", content=chunks, headers=AUTH)
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE


def test_within_the_cap_fastapi_words_what_is_wrong(client: TestClient) -> None:
    body = json.dumps({"name": "m", "data": {"vectors": [[0.5, "x"]] * 200}, "extra": 1})
    assert 1024 < len(body) < CAP  # validated in a worker process
    answer = client.post("/train", content=body, headers=AUTH)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "data.vectors.0.1: Input should be a valid number" in detail
    assert "extra: Extra inputs are not permitted" in detail
    broken = client.post("/train", content=b'{"name": "m", "data": ', headers=AUTH)
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("Invalid JSON: EOF while parsing")


def test_the_request_schema_is_still_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/train"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) >= {"name", "data", "config", "promote"}
    assert schema["required"] == ["name", "data"]


def test_inline_rows_leave_the_parse_as_one_float32_matrix() -> None:
    """The API process gets a matrix from the worker, not lists of Python floats whose freed
    memory its allocator would keep."""
    parsed = parse_train_request(_body(300))
    assert parsed.request.data.vectors is None and parsed.request.data.dataset is None
    assert parsed.rows is not None
    assert parsed.rows.dtype == np.float32 and parsed.rows.shape == (300, 4)
    assert parsed.rows[7].tolist() == [0.25, 0.5, 0.75, 1.0]
    by_name = parse_train_request(b'{"name": "m", "data": {"dataset": "ds_1"}}')
    assert by_name.rows is None and by_name.request.data.dataset == "ds_1"


def test_rows_that_make_no_matrix_get_the_submissions_message(client: TestClient) -> None:
    rows: list[list[float]] = [[0.5, 0.5, 0.5]] * 300 + [[0.5, 0.5]]
    body = json.dumps({"name": "m", "data": {"vectors": rows}})
    assert 1024 < len(body) < CAP  # parsed in a worker process
    assert parse_train_request(body.encode()).rows is None
    answer = client.post("/train", content=body, headers=AUTH)
    assert answer.status_code == 422
    assert "data.vectors" in answer.json()["detail"] and "300" in answer.json()["detail"]


def test_a_train_body_in_the_cap_is_queued_from_its_matrix(client: TestClient) -> None:
    answer = client.post("/train", content=_body(300), headers=AUTH)
    assert answer.status_code == 202, answer.text
