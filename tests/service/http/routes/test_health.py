"""/healthz, /readyz, /metrics, auth for inference, and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.tiny_model import publish_tiny_model

ROW = [0.1, 0.2, 0.3, 0.4]


def test_health_and_ready(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "detail": "the default model 'tiny' is loaded",
    }


def test_an_empty_repository_is_ready_and_serves_a_model_published_later(tmp_path: Path):
    """Without a default model, readiness means every active version is loaded: an empty
    repository (a first `docker compose up`) is ready, and says so."""
    repository = ModelRepository(tmp_path / "empty")
    settings = Settings(model_repository=repository.root, reload_interval_s=0.1)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {
            "status": "ready",
            "detail": "the model repository has no models yet",
        }
        scored = client.post("/score", json={"vectors": [ROW]})
        assert scored.status_code == 503
        assert scored.json() == {"detail": "no model is loaded yet"}
        publish_tiny_model(repository, "late")
        client.app.state.registry.refresh()
        assert client.get("/readyz").json()["detail"] == "1 model(s) loaded: late"
        assert client.post("/score", json={"vectors": [ROW]}).json()["model"]["name"] == "late"


def test_ready_does_not_need_a_model_named_digits(tmp_path: Path):
    """A repository of other models is ready without any default model configured."""
    repository = ModelRepository(tmp_path / "team")
    publish_tiny_model(repository, "pumps")
    publish_tiny_model(repository, "valves", seed=1)
    settings = Settings(model_repository=repository.root)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["detail"] == "2 model(s) loaded: pumps, valves"


def test_not_ready_while_an_active_version_is_not_loaded(tmp_path: Path):
    repository = ModelRepository(tmp_path / "broken")
    publish_tiny_model(repository, "good")
    publish_tiny_model(repository, "bad", seed=1)
    onnx = repository.version_dir("bad", 1) / "decoder.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with TestClient(create_app(Settings(model_repository=repository.root))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "detail": "model 'bad' v1: decoder.onnx does not match its sha256 checksum"
        }


def test_a_configured_default_model_must_be_loaded(tmp_path: Path):
    repository = ModelRepository(tmp_path / "other")
    publish_tiny_model(repository, "other")
    settings = Settings(model_repository=repository.root, default_model="digits")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"detail": "the default model 'digits' is not loaded yet"}


def test_metrics_count_requests_rows_and_scores(client: TestClient):
    client.post("/score", json={"vectors": [ROW, ROW, ROW], "threshold": 0})
    client.post("/score?model=nope", json={"vectors": [ROW]})
    text = client.get("/metrics").text
    assert (
        'aeserve_requests_total{method="POST",model="tiny",route="/score",status="200",version="1"} 1.0'
        in text
    )
    assert (
        'aeserve_requests_total{method="POST",model="",route="/score",status="404",version=""} 1.0'
        in text
    )
    assert 'aeserve_batch_rows_count{model="tiny",route="/score"} 1.0' in text
    assert 'aeserve_batch_rows_sum{model="tiny",route="/score"} 3.0' in text
    assert 'aeserve_scores_count{model="tiny"} 3.0' in text
    assert 'aeserve_anomalies_total{model="tiny"} 3.0' in text
    assert 'aeserve_model_loaded_version{model="tiny"} 1.0' in text
    assert 'aeserve_request_duration_seconds_bucket{le="0.0005",model="tiny",route="/score"' in text


def test_health_and_metrics_stay_open_when_inference_needs_the_key(settings: Settings):
    locked = settings.model_copy(update={"inference_requires_key": True})
    with TestClient(create_app(locked)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/models").status_code == 200
        assert client.post("/score", json={"vectors": [ROW]}).status_code == 401
        ok = client.post(
            "/score", json={"vectors": [ROW]}, headers={"authorization": "Bearer test-key-123"}
        )
        assert ok.status_code == 200


def test_openapi_documents_every_schema(client: TestClient):
    spec = client.get("/openapi.json").json()
    score = spec["paths"]["/score"]["post"]
    body = score["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-npy"}
    assert body["application/json"]["schema"]["title"] == "ScoreRequest"
    assert body["application/json"]["schema"]["properties"]["vectors"]["examples"]
    assert score["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ScoreResponse"
    }
    assert "422" in score["responses"]
    for path in ("/encode", "/decode", "/reconstruct", "/models", "/readyz"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_an_unexpected_failure_is_a_json_500_and_is_counted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    runtime = client.app.state.registry.get()  # type: ignore[attr-defined]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a fault inside the runtime")

    monkeypatch.setattr(runtime, "score_async", broken)
    response = client.post("/score", json={"vectors": [ROW]})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "a fault inside the runtime" in caplog.text  # the traceback is logged, not sent
    assert (
        'aeserve_requests_total{method="POST",model="tiny",route="/score",status="500",version="1"} 1.0'
        in client.get("/metrics").text
    )


def test_readiness_says_why_the_default_model_is_not_served(tmp_path: Path):
    repository = ModelRepository(tmp_path / "refused")
    publish_tiny_model(repository, "other")
    publish_tiny_model(repository, "tiny", seed=1)
    onnx = repository.version_dir("tiny", 1) / "decoder.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    settings = Settings(model_repository=repository.root, default_model="tiny")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "detail": "the default model 'tiny' cannot be loaded: "
            "model 'tiny' v1: decoder.onnx does not match its sha256 checksum"
        }
