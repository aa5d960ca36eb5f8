"""What only the Celery backend has to show: Redis out of reach is a 503 that says so."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app
from tests.service.jobs.helpers import free_port, rows


def test_an_unreachable_redis_is_503(tmp_path: Path):
    settings = Settings(
        model_repository=tmp_path,
        job_backend="celery",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    with TestClient(create_app(settings)) as client:
        for response in (
            client.get("/jobs"),
            client.get("/jobs/some-job"),
            client.post("/train", json={"name": "m", "data": {"vectors": rows(n=12)}}),
        ):
            assert response.status_code == 503
            assert response.json()["detail"].startswith("the job store (Redis) is unreachable: ")
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
