"""/encode, /decode, /reconstruct, /score against an independent computation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from core.repository import ModelRepository
from tests.service.http.routes.reference import Reference

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture
def reference(repository: ModelRepository) -> Reference:
    version = repository.active_version("tiny")
    assert version is not None
    return Reference(repository.version_dir("tiny", version), repository.manifest("tiny", version))


@pytest.fixture
def rows() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_encode_matches_the_encoder_graph(client: TestClient, reference: Reference, rows):
    response = client.post("/encode", json={"vectors": rows.tolist()})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "tiny", "version": 1}
    assert_allclose(body["codes"], reference.encode(rows), rtol=RTOL, atol=ATOL)


def test_decode_matches_the_decoder_graph(client: TestClient, reference: Reference, rows):
    codes = reference.encode(rows)
    response = client.post("/decode", json={"codes": codes.tolist()})
    assert response.status_code == 200
    assert_allclose(
        response.json()["reconstructions"], reference.decode(codes), rtol=RTOL, atol=ATOL
    )


def test_reconstruct_is_decode_of_encode(client: TestClient, reference: Reference, rows):
    response = client.post("/reconstruct", json={"vectors": rows.tolist()})
    assert response.status_code == 200
    assert_allclose(
        response.json()["reconstructions"], reference.reconstruct(rows), rtol=1e-4, atol=1e-5
    )


def test_score_is_the_mean_scaled_loss(client: TestClient, reference: Reference, rows):
    response = client.post("/score", json={"vectors": rows.tolist(), "explain": True})
    assert response.status_code == 200
    body = response.json()
    expected = reference.scores(rows)
    assert_allclose(body["scores"], expected, rtol=1e-4, atol=1e-5)
    assert_allclose(body["feature_errors"], reference.feature_errors(rows), rtol=1e-4, atol=1e-5)
    threshold = reference.manifest.threshold
    assert body["threshold"] == pytest.approx(threshold)
    assert body["anomalies"] == [bool(s > threshold) for s in body["scores"]]
    assert_allclose(body["p_values"], reference.p_values(np.array(body["scores"])), rtol=1e-9)
    n_cal = reference.calibration.size
    assert all(1 / (n_cal + 1) - 1e-12 <= p <= 1 for p in body["p_values"])


def test_score_without_explain_has_no_feature_errors(client: TestClient, rows):
    body = client.post("/score", json={"vectors": rows.tolist()}).json()
    assert "feature_errors" not in body


def test_threshold_override_changes_only_anomalies(client: TestClient, rows):
    plain = client.post("/score", json={"vectors": rows.tolist()}).json()
    cut = float(np.median(plain["scores"]))
    override = client.post("/score", json={"vectors": rows.tolist(), "threshold": cut}).json()
    assert override["threshold"] == cut
    assert override["anomalies"] == [s > cut for s in plain["scores"]]
    for field in ("scores", "p_values", "model"):
        assert override[field] == plain[field]


def test_json_and_npy_give_identical_numbers(client: TestClient, rows):
    as_json = client.post("/score", json={"vectors": rows.tolist()}).json()
    response = client.post(
        "/score",
        content=npy(rows),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-npy"
    assert response.headers["x-model-name"] == "tiny"
    assert response.headers["x-model-version"] == "1"
    scores = np.load(io.BytesIO(response.content))
    assert scores.dtype == np.float32
    assert_allclose(scores, np.array(as_json["scores"], dtype=np.float32), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("route", "field", "accept_field"),
    [("/encode", "vectors", "codes"), ("/reconstruct", "vectors", "reconstructions")],
)
def test_npy_in_json_out(client: TestClient, rows, route, field, accept_field):
    as_json = client.post(route, json={field: rows.tolist()}).json()
    response = client.post(route, content=npy(rows), headers={"content-type": "application/x-npy"})
    assert response.status_code == 200
    assert response.json()[accept_field] == as_json[accept_field]


def test_npy_float64_body_is_accepted(client: TestClient, rows):
    as_json = client.post("/score", json={"vectors": rows.tolist()}).json()
    response = client.post(
        "/score",
        content=npy(rows.astype(np.float64)),
        headers={"content-type": "application/x-npy"},
    )
    assert response.json()["scores"] == as_json["scores"]


def test_npy_query_options(client: TestClient, rows):
    response = client.post(
        "/score?threshold=0&explain=true",
        content=npy(rows),
        headers={"content-type": "application/x-npy"},
    )
    body = response.json()
    assert body["threshold"] == 0
    assert all(body["anomalies"])
    assert len(body["feature_errors"]) == len(rows)


def test_version_pinning_and_model_echo(client: TestClient, rows):
    response = client.post("/score?model=tiny&version=1", json={"vectors": rows.tolist()})
    assert response.json()["model"] == {"name": "tiny", "version": 1}


def test_a_single_vector_is_a_batch_of_one(client: TestClient, rows):
    batch = client.post("/score", json={"vectors": [rows[0].tolist()]}).json()
    single = client.post("/score", json={"vectors": rows[0].tolist()}).json()
    assert single == batch
    assert len(single["scores"]) == 1
