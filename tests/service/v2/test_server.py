"""Server-wide routes: liveness, readiness (503 until the default model is loaded), metadata."""

from __future__ import annotations

import time

import tritonclient.http as triton
from fastapi.testclient import TestClient

from core import __version__
from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.tiny_model import publish_tiny_model


def test_live(triton_client: triton.InferenceServerClient, client: TestClient) -> None:
    assert triton_client.is_server_live() is True
    response = client.get("/v2/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


def test_ready(triton_client: triton.InferenceServerClient, client: TestClient) -> None:
    assert triton_client.is_server_ready() is True
    response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True}


def test_server_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.get_server_metadata() == {
        "name": "aeserve",
        "version": __version__,
        "extensions": ["binary_tensor_data", "model_configuration", "parameters"],
    }


def test_not_ready_until_the_default_model_is_loaded(empty_repository: ModelRepository) -> None:
    settings = Settings(
        model_repository=empty_repository.root, default_model="tiny", reload_interval_s=0.1
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        response = client.get("/v2/health/ready")
        assert response.status_code == 503
        assert response.json() == {"error": "the default model 'tiny' is not loaded yet"}

        publish_tiny_model(empty_repository, "tiny", seed=0, promote=True)
        deadline = time.monotonic() + 10
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the new model was not loaded within 10 s"
            time.sleep(0.05)
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/tiny/ready").json() == {
            "name": "tiny",
            "version": "1",
            "ready": True,
        }
