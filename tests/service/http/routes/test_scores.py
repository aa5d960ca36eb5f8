"""GET /models/{name}/versions/{v}/calibration and /traffic: the calibration histogram from
calibration.npy, and recent scores counted on the same bins."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from core.repository import ModelRepository
from tests.service.http.routes.conftest import AUTH
from tests.tiny_model import sample_vectors


def test_calibration_histogram_counts_every_calibration_score(
    client: TestClient, repository: ModelRepository
) -> None:
    manifest = repository.manifest("tiny", 1)
    scores = np.load(repository.version_dir("tiny", 1) / "calibration.npy")

    response = client.get("/models/tiny/versions/1/calibration", headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "tiny", "version": 1}
    assert body["threshold"] == manifest.threshold
    assert body["threshold_quantile"] == manifest.threshold_quantile
    assert body["n"] == manifest.calibration.n == sum(body["counts"])
    edges = np.array(body["bin_edges"])
    assert len(edges) == len(body["counts"]) + 1
    assert edges[0] <= scores.min() and edges[-1] >= max(scores.max(), manifest.threshold)
    expected, _ = np.histogram(scores, bins=edges)
    assert body["counts"] == expected.tolist()


def test_calibration_of_an_unknown_version_is_404(client: TestClient) -> None:
    response = client.get("/models/tiny/versions/9/calibration", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "model 'tiny' has no version 9"}


def test_traffic_before_any_score_is_empty_on_the_calibration_bins(client: TestClient) -> None:
    calibration = client.get("/models/tiny/versions/1/calibration", headers=AUTH).json()

    body = client.get("/models/tiny/versions/1/traffic").json()

    assert body["window_rows"] == 0
    assert body["psi"] is None
    assert body["bin_edges"] == calibration["bin_edges"]
    assert body["counts"] == [0] * len(calibration["counts"])
    assert_allclose(body["expected_share_above_threshold"], 1 - calibration["threshold_quantile"])


def test_traffic_counts_the_scores_served(client: TestClient, repository: ModelRepository) -> None:
    manifest = repository.manifest("tiny", 1)
    rows = sample_vectors(manifest, 300, seed=7)
    scores = []
    for chunk in np.array_split(rows, 3):
        response = client.post("/score", json={"vectors": chunk.tolist()})
        assert response.status_code == 200, response.text
        scores += response.json()["scores"]

    body = client.get("/models/tiny/versions/1/traffic").json()

    assert body["window_rows"] == 300
    assert sum(body["counts"]) == 300
    assert body["psi"] is not None
    assert_allclose(body["share_above_threshold"], np.mean(np.array(scores) > manifest.threshold))
    assert sum(point["rows"] for point in body["anomaly_rate"]) == 300
