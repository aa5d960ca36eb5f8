"""Drift of scores: the PSI gauge stays below DRIFT_ALERT_PSI for traffic drawn like the training
data and rises past it when the input distribution shifts; the window keeps the latest scores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose
from prometheus_client.parser import text_string_to_metric_families

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from service.observability.drift import (
    DRIFT_ALERT_PSI,
    WINDOW_ROWS,
    population_stability_index,
    psi_bins,
    shares,
)
from tests.tiny_model import publish_tiny_model, sample_vectors


def gauges(client: TestClient) -> dict[str, float]:
    """The drift gauges of `tiny` v1 from /metrics, by metric name."""
    text = client.get("/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("aeserve_score_")
        for sample in family.samples
        if sample.labels == {"model": "tiny", "version": "1"}
    }


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny", loss="mse", seed=0)
    return repository


@pytest.fixture
def client(repository: ModelRepository) -> Iterator[TestClient]:
    settings = Settings(model_repository=repository.root, default_model="tiny")
    with TestClient(create_app(settings)) as client:
        yield client


def send(client: TestClient, rows: np.ndarray) -> None:
    for chunk in np.array_split(rows, 8):
        response = client.post("/score", json={"vectors": chunk.tolist()})
        assert response.status_code == 200, response.text


def test_traffic_like_the_training_data_stays_below_the_alert_level(
    client: TestClient, repository: ModelRepository
) -> None:
    manifest = repository.manifest("tiny", 1)
    send(client, sample_vectors(manifest, WINDOW_ROWS, seed=11))

    metrics = gauges(client)

    assert metrics["aeserve_score_drift_window_rows"] == WINDOW_ROWS
    assert metrics["aeserve_score_drift_psi"] < DRIFT_ALERT_PSI / 2
    assert_allclose(
        metrics["aeserve_score_expected_share_above_threshold"], 1 - manifest.threshold_quantile
    )
    assert abs(metrics["aeserve_score_share_above_threshold"] - 0.1) < 0.05


def test_shifted_inputs_raise_the_drift_gauge_past_the_alert_level(
    client: TestClient, repository: ModelRepository
) -> None:
    manifest = repository.manifest("tiny", 1)
    normal = sample_vectors(manifest, WINDOW_ROWS, seed=11)
    send(client, normal)
    assert gauges(client)["aeserve_score_drift_psi"] < DRIFT_ALERT_PSI

    # Every feature moved by one standard deviation of the training data.
    shifted = normal + np.asarray(manifest.scaling.scale, dtype=np.float32)
    send(client, shifted)

    metrics = gauges(client)
    assert metrics["aeserve_score_drift_psi"] > DRIFT_ALERT_PSI
    assert metrics["aeserve_score_share_above_threshold"] > 0.3


def test_the_window_holds_the_latest_scores(
    client: TestClient, repository: ModelRepository
) -> None:
    manifest = repository.manifest("tiny", 1)
    send(client, sample_vectors(manifest, WINDOW_ROWS + 500, seed=3))
    assert gauges(client)["aeserve_score_drift_window_rows"] == WINDOW_ROWS


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    calibration = np.sort(rng.gamma(2.0, 1.0, 1000))
    edges = psi_bins(calibration)
    expected = shares(edges, calibration)
    assert edges.size == 9  # ten bins of a hundred calibration scores
    assert_allclose(expected, 0.1)
    assert population_stability_index(expected, expected) == 0.0
    psis = [
        population_stability_index(expected, shares(edges, rng.gamma(2.0, 1.0, 5000) + shift))
        for shift in (0.0, 0.5, 2.0)
    ]
    assert psis[0] < 0.02 < psis[1] < psis[2]
    assert psis[2] > DRIFT_ALERT_PSI
