"""Fixtures for the HTTP layer: settings → app → client, over a real tiny model on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.tiny_model import publish_tiny_model

API_KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny", loss="mse", seed=0, promote=True)
    return repository


@pytest.fixture(params=[True, False], ids=["fast-lane", "fastapi-routes"])
def settings(request: pytest.FixtureRequest, repository: ModelRepository) -> Settings:
    # Inference requests take the fast lane or FastAPI's routes; both must answer the same.
    return Settings(
        inference_fast_lane=request.param,
        model_repository=repository.root,
        default_model="tiny",
        reload_interval_s=0.2,
        max_batch=100,
        max_body_bytes=200_000,
        api_key=API_KEY,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def auth() -> dict[str, str]:
    return AUTH
