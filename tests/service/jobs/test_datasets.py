"""POST /datasets: each file type becomes the same stored float32 array, by a checksum id."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_array_equal

from core.datasets import DatasetStore
from tests.service.jobs.conftest import Deploy, Deployment, start_deployment
from tests.service.jobs.helpers import AUTH

ARRAY = np.arange(24, dtype=np.float32).reshape(12, 2) / 4


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    return start_deployment(request, deploy, "local")


def as_csv() -> bytes:
    lines = ["a,b"] + [f"{x},{y}" for x, y in ARRAY.tolist()]
    return "\n".join(lines).encode()


def as_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, ARRAY)
    return buffer.getvalue()


def as_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=ARRAY.astype(np.float64), y=np.zeros(12))
    return buffer.getvalue()


def as_parquet() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": ARRAY[:, 0], "b": ARRAY[:, 1].astype(np.int64) * 0}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("rows.csv", as_csv, ARRAY),
        ("rows.NPY", as_npy, ARRAY),
        ("rows.npz", as_npz, ARRAY),
        ("rows.parquet", as_parquet, np.column_stack([ARRAY[:, 0], np.zeros(12)])),
    ],
)
def test_upload_stores_the_rows(
    client: TestClient, deployment: Deployment, filename, content, expected
):
    response = client.post("/datasets", files={"file": (filename, content())}, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows"], body["dim"]) == (12, 2)
    stored = DatasetStore(deployment.settings.datasets_path).load(body["dataset"])
    assert stored.dtype == np.float32
    assert_array_equal(stored, expected)
    assert client.get(f"/datasets/{body['dataset']}", headers=AUTH).json() == body


def test_the_same_rows_get_the_same_id(client: TestClient):
    first = client.post("/datasets", files={"file": ("a.csv", as_csv())}, headers=AUTH).json()
    second = client.post("/datasets", files={"file": ("b.npy", as_npy())}, headers=AUTH).json()
    assert (first["dataset"], first["sha256"]) == (second["dataset"], second["sha256"])
    # Stored once; the upload's own details are the latest upload's.
    assert (second["filename"], second["feature_names"]) == ("b.npy", None)
    assert client.get(f"/datasets/{first['dataset']}", headers=AUTH).json() == second
    assert len(first["dataset"]) == 32
    assert first["sha256"].startswith(first["dataset"])


def test_a_changed_file_is_not_trained_on(deployment: Deployment):
    store = DatasetStore(deployment.settings.datasets_path)
    info = store.add_array(ARRAY + 100)
    (store.root / f"{info.dataset}.npy").write_bytes(as_npy())
    with pytest.raises(ValueError, match="does not match its checksum"):
        store.load(info.dataset)


def test_datasets_are_listed_newest_first_and_deleted(client: TestClient, deployment: Deployment):
    first = client.post("/datasets", files={"file": ("a.npy", as_npy())}, headers=AUTH).json()
    time.sleep(0.01)  # distinct modification times
    second = client.post("/datasets", files={"file": ("b.csv", as_csv() + b"\n9,9")}, headers=AUTH)
    second_id = second.json()["dataset"]
    listed = [d["dataset"] for d in client.get("/datasets", headers=AUTH).json()]
    assert listed.index(second_id) < listed.index(first["dataset"])

    assert client.delete(f"/datasets/{second_id}").status_code == 401  # an admin call
    deleted = client.delete(f"/datasets/{second_id}", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json() == second.json()
    root = deployment.settings.datasets_path
    assert not (root / f"{second_id}.json").exists() and not (root / f"{second_id}.npy").exists()
    assert second_id not in [d["dataset"] for d in client.get("/datasets", headers=AUTH).json()]
    assert client.get(f"/datasets/{second_id}", headers=AUTH).status_code == 404
    again = client.delete(f"/datasets/{second_id}", headers=AUTH)
    assert again.status_code == 404
    assert "does not exist" in again.json()["detail"]
    assert client.delete("/datasets/not-an-id", headers=AUTH).status_code == 404
