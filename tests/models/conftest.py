"""Fixtures: real tabular data from ADBench and a throwaway model repository."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.repository import ModelRepository
from tests.data import ADBENCH


@pytest.fixture(scope="session")
def adbench_dir() -> Path:
    """The two ADBench sets kept in tests/data (tests/data/README.md); AESERVE_ADBENCH_DIR
    points elsewhere, e.g. at the whole benchmark."""
    path = Path(os.environ.get("AESERVE_ADBENCH_DIR", ADBENCH))
    if not path.is_dir():
        pytest.skip(f"ADBench data not found at {path}; unset AESERVE_ADBENCH_DIR")
    return path


@pytest.fixture(scope="session")
def cardio_all(adbench_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 1831 cardio rows [n, 21] and their labels (1 = anomaly)."""
    with np.load(adbench_dir / "6_cardio.npz") as archive:
        return archive["X"].astype(np.float32), archive["y"].astype(int)


@pytest.fixture(scope="session")
def cardio(cardio_all: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The 1655 normal cardio rows: what an anomaly detector is trained on."""
    X, y = cardio_all
    return X[y == 0]


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "model-repository")
