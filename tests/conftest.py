"""Fixtures for the service: a throwaway repository holding a real tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.manifest import Manifest
from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "model-repository")


@pytest.fixture
def tiny_model(repository: ModelRepository) -> Manifest:
    """Model `tiny` v1 (d=4, k=2, MSE), active; the value is its published manifest."""
    version = publish_tiny_model(repository, "tiny")
    return repository.manifest("tiny", version)
