"""Feature names travel from the data to the manifest: a CSV header or parquet columns uploaded
to /datasets, or `feature_names` in /train; datasets keep their file's name and upload time."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.jobs.conftest import Deploy, Deployment, start_deployment
from tests.service.jobs.helpers import AUTH, rows, wait_for

DATA = rows(n=40, d=4)
NAMES = ["age", "pulse", "pressure", "oxygen"]


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    return start_deployment(request, deploy, "local")


def csv_bytes(header: list[str] | None) -> bytes:
    lines = [",".join(header)] if header else []
    lines += [",".join(str(v) for v in row) for row in DATA]
    return ("\n".join(lines) + "\n").encode()


def upload(client: TestClient, name: str, content: bytes) -> dict[str, object]:
    response = client.post("/datasets", files={"file": (name, content)}, headers=AUTH)
    assert response.status_code == 201, response.text
    return dict(response.json())


def train(client: TestClient, name: str, data: dict[str, object], **extra: object) -> int:
    body = {"name": name, "data": data, "config": {"epochs": 2}, **extra}
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    record = wait_for(client, response.json()["job_id"])
    assert record["status"] == "succeeded", record
    return int(record["result"]["model"]["version"])


def test_a_csv_header_names_the_features_of_the_dataset_and_the_model(
    client: TestClient, deployment: Deployment
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    info = upload(client, "vitals.csv", csv_bytes(NAMES))
    assert info["feature_names"] == NAMES
    assert info["filename"] == "vitals.csv"
    uploaded_at = datetime.fromisoformat(str(info["uploaded_at"]))
    assert before <= uploaded_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert client.get(f"/datasets/{info['dataset']}", headers=AUTH).json() == info
    assert client.get("/datasets", headers=AUTH).json()[0] == info
    version = train(client, "named", {"dataset": info["dataset"]})
    assert deployment.repository.manifest("named", version).feature_names == NAMES
    (model,) = [m for m in client.get("/models").json()["models"] if m["name"] == "named"]
    assert model["feature_names"] == NAMES


def test_train_feature_names_win_over_the_header(
    client: TestClient, deployment: Deployment
) -> None:
    info = upload(client, "vitals.csv", csv_bytes(NAMES))
    given = ["a", "b", "c", "d"]
    version = train(client, "renamed", {"dataset": info["dataset"]}, feature_names=given)
    assert deployment.repository.manifest("renamed", version).feature_names == given


def test_inline_rows_take_feature_names_too(client: TestClient, deployment: Deployment) -> None:
    version = train(client, "inline", {"vectors": DATA}, feature_names=NAMES)
    assert deployment.repository.manifest("inline", version).feature_names == NAMES


def test_data_without_names_gives_a_manifest_without(
    client: TestClient, deployment: Deployment
) -> None:
    info = upload(client, "plain.csv", csv_bytes(None))
    assert info["feature_names"] is None
    out = io.BytesIO()
    np.save(out, np.asarray(DATA, dtype=np.float32))
    assert upload(client, "plain.npy", out.getvalue())["feature_names"] is None
    version = train(client, "unnamed", {"dataset": info["dataset"]})
    manifest = deployment.repository.manifest("unnamed", version)
    assert manifest.feature_names is None
    assert manifest.names_of_features() == ["x0", "x1", "x2", "x3"]
    assert (
        "feature_names"
        not in (deployment.repository.version_dir("unnamed", version) / "manifest.json").read_text()
    )


@pytest.mark.parametrize(
    ("names", "detail"),
    [
        (["a", "b"], "feature_names has 2 names; the data has 4 features"),
        (["a", "b", "a", "d"], "feature_names: 'a' names both feature 0 and feature 2"),
        (["a", "", "c", "d"], "feature_names.1: String should have at least 1 character"),
        (["a", "b", "c", "d" * 257], "feature_names.3: String should have at most 256 characters"),
    ],
)
def test_bad_feature_names_are_a_422_at_submit(
    client: TestClient, names: list[str], detail: str
) -> None:
    body = {"name": "bad", "data": {"vectors": DATA}, "feature_names": names}
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"] == detail
