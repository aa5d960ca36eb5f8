"""Every bad /train, /datasets and /jobs request: a 4xx with a message, checked at submit time,
and no job queued for it. Submission does not depend on the backend, so the local one serves."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from tests.service.jobs.conftest import Deploy, Deployment, start_deployment
from tests.service.jobs.helpers import AUTH, rows
from tests.tiny_model import publish_tiny_model

DATA = rows(n=20, d=6)
UNIT = np.clip(np.asarray(DATA) / 10 + 0.5, 0, 1).tolist()


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    deployment = start_deployment(request, deploy, "local")
    publish_tiny_model(ModelRepository(deployment.settings.model_repository), "tiny")  # d = 4
    return deployment


def detail(response: Any) -> str:
    body = response.json()
    assert set(body) == {"detail"}
    assert "Traceback" not in body["detail"]
    return str(body["detail"])


def train_body(**changes: Any) -> dict[str, Any]:
    return {"name": "valid", "data": {"vectors": DATA}, "config": {"epochs": 2}, **changes}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            train_body(name="Not Valid"),
            "model name 'Not Valid' is invalid: use 1-64 characters from a-z, 0-9, '_', '.', "
            "'-', starting with a letter or digit",
        ),
        (train_body(data={}), "data: Value error, give exactly one of 'vectors' or 'dataset'"),
        (
            train_body(data={"vectors": DATA, "dataset": "0" * 32}),
            "data: Value error, give exactly one of 'vectors' or 'dataset'",
        ),
        (train_body(data={"rows": DATA}), "data.rows: Extra inputs are not permitted"),
        (
            train_body(data={"vectors": []}),
            "data.vectors: List should have at least 1 item after validation, not 0",
        ),
        (
            train_body(data={"vectors": [*DATA[:5], DATA[5][:3], *DATA[6:]]}),
            "data.vectors: row 5 has 3 values; row 0 has 6",
        ),
        (train_body(data={"vectors": DATA[:5]}), "data has 5 rows; training needs at least 10"),
        (
            train_body(data={"vectors": [*DATA[:3], [1.0, 1e39, 0.0, 0.0, 0.0, 0.0], *DATA[4:]]}),
            "data.vectors: row 3, column 1 is 1e+39, beyond the float32 range; "
            "values must be finite numbers",
        ),
        (
            train_body(data={"vectors": [[1.0, 2.0]] * 5 + [[1.0, 2.0, 3.0]] * 5}),
            "data.vectors: row 5 has 3 values; row 0 has 2",
        ),
        (
            train_body(data={"vectors": [[1.0]] * 12}),
            "config: data has 1 feature; an autoencoder needs at least 2 to compress",
        ),
        (
            train_body(config={"epochs": 0}),
            "config.epochs: Input should be greater than or equal to 1",
        ),
        (train_body(config={"epochs": "many"}), None),
        (train_body(config={"layers": 3}), "config.layers: Extra inputs are not permitted"),
        (train_body(config={"loss": "mae"}), "config.loss: Input should be 'mse' or 'bce'"),
        (
            train_body(config={"latent_dim": 6}),
            "config: latent_dim 6 must be smaller than the 6 input features, "
            "or the autoencoder can learn the identity",
        ),
        (
            train_body(config={"hidden_dims": [4, 1], "latent_dim": 2}),
            "config: hidden_dims [4, 1] has a layer of width 1, narrower than latent_dim 2: "
            "the bottleneck must be the narrowest layer",
        ),
        (
            train_body(config={"validation_fraction": 0.01}),
            "config: validation_fraction 0.01 of 20 rows leaves 0 validation and 20 training "
            "rows; both need at least one",
        ),
        (
            train_body(config={"loss": "bce", "scaling": "none"}),
            "config: loss 'bce' needs inputs in [0, 1] after scaling; with scaling 'none' column 0 "
            f"ranges {min(r[0] for r in DATA):.4g}..{max(r[0] for r in DATA):.4g} "
            "(6 columns in all): "
            "use scaling 'minmax' or loss 'mse'",
        ),
        (
            train_body(data={"dataset": "0" * 32}),
            f"data.dataset: dataset '{'0' * 32}' does not exist; upload it with POST /datasets",
        ),
        (
            train_body(data={"dataset": "../etc/passwd"}),
            "data.dataset: dataset '../etc/passwd' is not a dataset id (32 hex digits)",
        ),
        (
            train_body(name="tiny"),
            "data has 6 features; model 'tiny' v1 expects 4",
        ),
        (train_body(promote="maybe"), None),
        # JSON values of another type are refused, not converted, as the schema says.
        (train_body(promote=0), "promote: Input should be a valid boolean"),
        (train_body(config={"epochs": "2"}), "config.epochs: Input should be a valid integer"),
        (
            train_body(config={"learning_rate": "0.01"}),
            "config.learning_rate: Input should be a valid number",
        ),
        ({"data": {"vectors": DATA}}, "name: Field required"),
    ],
)
def test_bad_train_requests_are_422(client: TestClient, body: dict[str, Any], message: str | None):
    jobs_before = client.get("/jobs", headers=AUTH).json()
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    text = detail(response)
    if message is not None:
        assert text == message
    assert client.get("/jobs", headers=AUTH).json() == jobs_before, (
        "a rejected request queued a job"
    )


def test_bce_without_scaling_is_accepted_for_unit_range_data(client: TestClient):
    body = train_body(data={"vectors": UNIT}, config={"loss": "bce", "scaling": "none"})
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert client.delete(f"/jobs/{job_id}", headers=AUTH).status_code in (200, 409)


def test_non_finite_and_malformed_bodies(client: TestClient):
    raw = json.dumps(train_body()).replace("[[", "[[NaN, ", 1)
    response = client.post(
        "/train", content=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert detail(response) == "data.vectors.0.0: Input should be a finite number"
    response = client.post(
        "/train", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_a_body_over_the_limit_is_413(client: TestClient, deployment: Deployment):
    big = rows(n=50_000, d=8)
    response = client.post("/train", json=train_body(data={"vectors": big}), headers=AUTH)
    assert response.status_code == 413
    limit = deployment.settings.max_body_bytes
    assert detail(response) == f"request body is larger than the limit of {limit} bytes"


def test_an_upload_over_the_limit_is_413(client: TestClient, deployment: Deployment):
    content = b"1.0,2.0\n" * 300_000
    response = client.post("/datasets", files={"file": ("big.csv", content)}, headers=AUTH)
    assert response.status_code == 413
    limit = deployment.settings.max_body_bytes
    assert detail(response) == f"request body is larger than the limit of {limit} bytes"


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/train"), ("post", "/datasets"), ("delete", "/jobs/some-job")],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_management_calls_need_the_key(
    client: TestClient, method: str, path: str, headers: dict[str, str]
):
    kwargs: dict[str, Any] = {"json": train_body()} if path == "/train" else {}
    if path == "/datasets":
        kwargs = {"files": {"file": ("a.csv", b"1,2\n3,4\n")}}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == 401
    assert detail(response) == "missing or invalid API key: send 'Authorization: Bearer <key>'"


@pytest.mark.parametrize("path", ["/jobs", "/jobs/none", "/jobs/none/events"])
def test_reading_jobs_needs_the_key(client: TestClient, path: str):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="aeserve"'
    assert client.get(path, headers=AUTH).status_code == (200 if path == "/jobs" else 404)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        (
            "data.txt",
            b"1,2\n",
            "file 'data.txt' has an unknown type; use one of .csv, .npy, .npz, .parquet",
        ),
        ("data.csv", b"", "data.csv: is empty"),
        ("data.csv", b"a,b\n1,2\n3,x\n", "data.csv: line 3, column 2 is not a number: 'x'"),
        ("data.csv", b"1,2\n3,4,5\n", "data.csv: line 2 has 3 values; line 1 has 2"),
        (
            "data.csv",
            b"a,b\n1,2\nnan,4\n",
            "data.csv: line 3, column 1 is NaN; values must be finite numbers",
        ),
        ("data.npy", b"not an npy file", "data.npy: is not a .npy file (no NumPy header)"),
        ("data.npz", b"PK\x03\x04 broken", "data.npz: is not a .npz file (not a zip archive)"),
        ("data.parquet", b"PAR1 broken", None),
    ],
)
def test_bad_uploads_are_422(
    client: TestClient, filename: str, content: bytes, message: str | None
):
    response = client.post("/datasets", files={"file": (filename, content)}, headers=AUTH)
    assert response.status_code == 422, response.text
    text = detail(response)
    assert text.startswith((filename, f"file '{filename}'"))
    if message is not None:
        assert text == message


def test_upload_without_a_file_is_422(client: TestClient):
    response = client.post("/datasets", data={"other": "x"}, headers=AUTH)
    assert response.status_code == 422
    assert detail(response) == "file: Field required"


def test_an_unknown_dataset_is_404(client: TestClient):
    response = client.get(f"/datasets/{'a' * 32}", headers=AUTH)
    assert response.status_code == 404
    assert detail(response) == (
        f"dataset '{'a' * 32}' does not exist; upload it with POST /datasets"
    )
