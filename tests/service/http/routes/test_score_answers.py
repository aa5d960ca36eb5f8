"""/score's answer formats: JSON, `.npy` (the scores alone) and `.npz` (every field), and what
happens to `threshold` and `explain` in each; the query options in /openapi.json."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

NPY = {"content-type": "application/x-npy"}


@pytest.fixture
def rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_npz_answer_carries_every_field(client: TestClient, rows: np.ndarray) -> None:
    as_json = client.post(
        "/score?threshold=0.3&explain=true&top=2", content=npy(rows), headers=NPY
    ).json()
    response = client.post(
        "/score?threshold=0.3&explain=true&top=2",
        content=npy(rows),
        headers={**NPY, "accept": "application/x-npz"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npz"
    assert (response.headers["x-model-name"], response.headers["x-model-version"]) == ("tiny", "1")
    with np.load(io.BytesIO(response.content)) as archive:
        assert sorted(archive.files) == [
            "anomalies",
            "feature_errors",
            "feature_names",
            "p_values",
            "scores",
            "threshold",
            "top_errors",
            "top_indices",
        ]
        assert archive["feature_names"].tolist() == as_json["feature_names"]
        top = as_json["top_features"]
        assert archive["top_indices"].tolist() == [[f["index"] for f in row] for row in top]
        assert_allclose(
            archive["top_errors"], [[f["error"] for f in row] for row in top], rtol=1e-6
        )
        assert archive["threshold"].shape == ()
        assert_allclose(archive["threshold"], 0.3, rtol=1e-6)
        assert archive["anomalies"].dtype == np.bool_
        assert archive["anomalies"].tolist() == as_json["anomalies"]
        assert_allclose(archive["scores"], as_json["scores"], rtol=1e-6)
        assert_allclose(archive["p_values"], as_json["p_values"], rtol=1e-6)
        assert_allclose(archive["feature_errors"], as_json["feature_errors"], rtol=1e-6)


def test_npz_without_explain_has_no_feature_errors(client: TestClient, rows: np.ndarray) -> None:
    response = client.post(
        "/score", json={"vectors": rows.tolist()}, headers={"accept": "application/x-npz"}
    )
    with np.load(io.BytesIO(response.content)) as archive:
        assert "feature_errors" not in archive.files
        assert len(archive["scores"]) == len(rows)


@pytest.mark.parametrize(
    ("query", "asked"),
    [
        ("threshold=0.3", "threshold"),
        ("explain=true", "explain"),
        ("threshold=0.3&explain=true", "threshold and explain"),
        ("top=2", "top"),
    ],
)
def test_npy_answer_refuses_what_it_cannot_carry(
    client: TestClient, rows: np.ndarray, query: str, asked: str
) -> None:
    response = client.post(
        f"/score?{query}", content=npy(rows), headers={**NPY, "accept": "application/x-npy"}
    )
    assert response.status_code == 406
    assert response.json() == {
        "detail": "an application/x-npy answer holds the scores only, so it cannot carry what "
        f"{asked} asks for; send Accept: application/x-npz (every field of the JSON answer) "
        "or application/json"
    }


def test_npy_answer_refuses_options_of_a_json_body(client: TestClient, rows: np.ndarray) -> None:
    response = client.post(
        "/score",
        json={"vectors": rows.tolist(), "explain": True},
        headers={"accept": "application/x-npy"},
    )
    assert response.status_code == 406


def test_npy_answer_without_options_is_the_scores(client: TestClient, rows: np.ndarray) -> None:
    response = client.post(
        "/score?explain=false", content=npy(rows), headers={**NPY, "accept": "application/x-npy"}
    )
    assert response.status_code == 200
    scores = np.load(io.BytesIO(response.content))
    assert scores.shape == (len(rows),)


def test_query_options_apply_to_a_json_body_that_leaves_them_out(
    client: TestClient, rows: np.ndarray
) -> None:
    from_query = client.post("/score?threshold=0&explain=true", json={"vectors": rows.tolist()})
    assert from_query.json()["threshold"] == 0
    assert len(from_query.json()["feature_errors"]) == len(rows)
    body_wins = client.post(
        "/score?threshold=0&explain=true",
        json={"vectors": rows.tolist(), "threshold": 5.0, "explain": False},
    )
    assert body_wins.json()["threshold"] == 5.0
    assert "feature_errors" not in body_wins.json()


def test_query_options_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    score = paths["/score"]["post"]
    query = {p["name"]: p for p in score["parameters"] if p["in"] == "query"}
    assert {"model", "version", "threshold", "explain"} <= set(query)
    assert "description" in query["threshold"] and "description" in query["explain"]
    assert set(score["responses"]["200"]["content"]) == {
        "application/json",
        "application/x-npy",
        "application/x-npz",
    }
    assert "406" in score["responses"]
    encode_query = {p["name"] for p in paths["/encode"]["post"]["parameters"]}
    assert "threshold" not in encode_query and "explain" not in encode_query
