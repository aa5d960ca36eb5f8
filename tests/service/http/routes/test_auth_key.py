"""An empty API key opens nothing, and every 401 says which scheme to use."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.service.http.routes.conftest import AUTH

ROW = [0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "fastapi-routes"])
@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_lets_no_request_through(
    repository: ModelRepository, key: str, fast_lane: bool
) -> None:
    settings = Settings(
        model_repository=repository.root,
        api_key=key,
        inference_requires_key=True,
        inference_fast_lane=fast_lane,
    )
    with TestClient(create_app(settings)) as client:
        for headers in ({"authorization": "Bearer"}, {"authorization": "Bearer "}, {}):
            promote = client.post("/models/tiny/versions/1/promote", headers=headers)
            assert promote.status_code == 401
            assert (
                client.post("/score", json={"vectors": [ROW]}, headers=headers).status_code == 401
            )


def test_a_401_names_the_scheme(client: TestClient) -> None:
    response = client.post("/models/tiny/versions/1/promote")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="aeserve"'


@pytest.mark.parametrize("path", ["/models/tiny/versions/1", "/models/tiny/versions/1/calibration"])
def test_a_manifest_and_its_calibration_are_read_with_the_key_only(
    client: TestClient, path: str
) -> None:
    """They hold the training data's statistics and calibration scores: stored data."""
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="aeserve"'
    assert client.get(path, headers=AUTH).status_code == 200
