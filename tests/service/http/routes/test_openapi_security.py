"""/openapi.json marks an operation as needing the key exactly when this server asks for it: never
without a key, inference only with `inference_requires_key`; a 401 is listed only there."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.service.http.routes.conftest import API_KEY

INFERENCE = [
    ("/encode", {"vectors": [[0.1, 0.2, 0.3, 0.4]]}),
    ("/decode", {"codes": [[0.1, 0.2]]}),
    ("/reconstruct", {"vectors": [[0.1, 0.2, 0.3, 0.4]]}),
    ("/score", {"vectors": [[0.1, 0.2, 0.3, 0.4]]}),
    (
        "/v2/models/tiny/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]},
    ),
]
ADMIN = [
    ("post", "/models/{name}/versions/{version}/promote"),
    ("get", "/jobs"),
    ("post", "/train"),
]


def secured(document: dict[str, Any], method: str, path: str) -> bool:
    operation = document["paths"][path][method]
    assert ("401" in operation["responses"]) == bool(operation.get("security")), (method, path)
    return bool(operation.get("security"))


@pytest.mark.parametrize(
    ("api_key", "inference_requires_key", "admin", "inference"),
    [(None, False, False, False), (API_KEY, False, True, False), (API_KEY, True, True, True)],
    ids=["no-key", "key", "key-for-inference-too"],
)
def test_security_is_what_the_settings_require(
    repository: ModelRepository,
    api_key: str | None,
    inference_requires_key: bool,
    admin: bool,
    inference: bool,
) -> None:
    settings = Settings(
        model_repository=repository.root,
        api_key=api_key,
        inference_requires_key=inference_requires_key,
    )
    with TestClient(create_app(settings)) as client:
        document = client.get("/openapi.json").json()
        for method, path in ADMIN:
            assert secured(document, method, path) is admin, path
        for url, body in INFERENCE:
            path = url.replace("/tiny/", "/{name}/")
            assert secured(document, "post", path) is inference, path
            answer = client.post(url, json=body)  # without the key
            assert answer.status_code == (401 if inference else 200), (url, answer.text)
        assert secured(document, "post", "/v2/models/{name}/versions/{version}/infer") is inference
