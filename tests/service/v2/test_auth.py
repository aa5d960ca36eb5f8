"""With `inference_requires_key`, protocol inference needs the key like the REST routes do;
health and metadata stay open, as probes and clients' discovery need them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app

KEY = "v2-test-key"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture
def locked(repository: ModelRepository) -> Iterator[TestClient]:
    settings = Settings(
        model_repository=repository.root,
        default_model="tiny",
        api_key=KEY,
        inference_requires_key=True,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_infer_needs_the_key(locked: TestClient) -> None:
    response = locked.post("/v2/models/tiny/infer", json=BODY)
    assert response.status_code == 401
    assert response.json() == {
        "error": "missing or invalid API key: send 'Authorization: Bearer <key>'"
    }
    allowed = locked.post(
        "/v2/models/tiny/infer", json=BODY, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    "path", ["/v2", "/v2/health/ready", "/v2/models/tiny", "/v2/models/tiny/ready"]
)
def test_discovery_stays_open(locked: TestClient, path: str) -> None:
    assert locked.get(path).status_code == 200
