"""/score's explain by feature name and its `top` option: the k worst features of each row."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model, reference_outputs, sample_vectors

NAMES = ["age", "pulse", "pressure", "oxygen"]


@pytest.fixture
def rows(repository: ModelRepository) -> np.ndarray:
    return sample_vectors(repository.manifest("tiny", 1), 5)


def expected_top(repository: ModelRepository, version: int, rows: np.ndarray, k: int):
    errors = reference_outputs(repository.manifest("tiny", version), rows)["feature_errors"]
    order = np.argsort(-errors, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(errors, order, axis=1)


def test_explain_names_each_column_of_the_feature_errors(
    client: TestClient, repository: ModelRepository, rows: np.ndarray
) -> None:
    body = client.post("/score", json={"vectors": rows.tolist(), "explain": True}).json()
    assert body["feature_names"] == ["x0", "x1", "x2", "x3"]  # unnamed data: scikit-learn's names
    assert np.shape(body["feature_errors"]) == (5, 4)
    assert "top_features" not in body


def test_top_gives_each_rows_worst_features_by_name(
    client: TestClient, repository: ModelRepository, rows: np.ndarray
) -> None:
    publish_tiny_model(repository, "tiny", seed=3, feature_names=NAMES)
    body = client.post("/score?version=2", json={"vectors": rows.tolist(), "top": 2}).json()
    indices, errors = expected_top(repository, 2, rows, 2)
    assert body["model"] == {"name": "tiny", "version": 2}
    assert body["feature_names"] == NAMES
    assert "feature_errors" not in body  # top alone does not ask for the whole matrix
    for row, (row_indices, row_errors) in enumerate(zip(indices, errors, strict=True)):
        got = body["top_features"][row]
        assert [f["index"] for f in got] == row_indices.tolist()
        assert [f["feature"] for f in got] == [NAMES[j] for j in row_indices]
        assert_allclose([f["error"] for f in got], row_errors, rtol=1e-4, atol=1e-6)


def test_top_as_a_query_option_with_a_npy_body(
    client: TestClient, repository: ModelRepository, rows: np.ndarray
) -> None:
    out = io.BytesIO()
    np.save(out, rows)
    response = client.post(
        "/score?top=3&explain=true",
        content=out.getvalue(),
        headers={"content-type": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    indices, _ = expected_top(repository, 1, rows, 3)
    assert [[f["index"] for f in row] for row in body["top_features"]] == indices.tolist()
    assert np.shape(body["feature_errors"]) == (5, 4)


def test_top_beyond_the_width_gives_every_feature(client: TestClient, rows: np.ndarray) -> None:
    body = client.post("/score", json={"vectors": rows.tolist(), "top": 50}).json()
    assert all(len(row) == 4 for row in body["top_features"])


@pytest.mark.parametrize(
    ("query", "body", "detail"),
    [
        ("", {"top": 0}, "top: Input should be greater than or equal to 1"),
        # Read strictly, as the schema says: a string or a fraction is no integer.
        ("", {"top": "two"}, "top: Input should be a valid integer"),
        ("", {"top": 1.5}, "top: Input should be a valid integer"),
    ],
)
def test_a_bad_top_is_a_422(
    client: TestClient, rows: np.ndarray, query: str, body: dict[str, object], detail: str
) -> None:
    response = client.post(f"/score{query}", json={"vectors": rows.tolist(), **body})
    assert response.status_code == 422
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize("top", ["0", "-1", "x", "9" * 5000])
def test_a_bad_top_query_is_a_422(client: TestClient, rows: np.ndarray, top: str) -> None:
    response = client.post(f"/score?top={top}", json={"vectors": rows.tolist()})
    assert response.status_code == 422, response.text
    assert "top" in response.json()["detail"]


def test_top_is_in_the_openapi_document(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/score"]["post"]
    assert "top" in {p["name"] for p in operation["parameters"]}
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"feature_names", "top_features"} <= set(schema["ScoreResponse"]["properties"])
