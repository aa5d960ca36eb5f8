"""A chunked body over the limit gets 413 on every route, including those FastAPI reads itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.manifest import Manifest
from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app

KEY = {"Authorization": "Bearer chunk-key"}
LIMIT = 100_000


def chunks() -> Iterator[bytes]:
    for _ in range(30):  # 300 kB, with no Content-Length: the limit counts as it streams
        yield b"x" * 10_000


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/train", "application/json"),
        ("/datasets", "multipart/form-data; boundary=xyz"),
        ("/score", "application/json"),
        ("/v2/models/tiny/infer", "application/json"),
    ],
)
def test_a_chunked_body_over_the_limit_is_a_413(
    repository: ModelRepository, tiny_model: Manifest, path: str, content_type: str
) -> None:
    settings = Settings(model_repository=repository.root, api_key="chunk-key", max_body_bytes=LIMIT)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            path, content=chunks(), headers={**KEY, "content-type": content_type}
        )
    assert response.status_code == 413
    key = "error" if path.startswith("/v2") else "detail"
    assert response.json() == {key: f"request body is larger than the limit of {LIMIT} bytes"}
