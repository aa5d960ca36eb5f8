"""An import runs through either job backend: the local process pool, and Celery with a real
Redis and a real `aeserve worker` reading the model file from the shared data folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests import foreign_models as foreign
from tests.service.jobs.helpers import AUTH, wait_for


def test_an_import_job_publishes_a_version(client: TestClient, tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    model = foreign.linear(tmp_path / "linear.onnx", 5).read_bytes()
    calibration = io.BytesIO()
    np.save(calibration, rows)
    files = {"file": ("linear.onnx", model), "calibration": ("rows.npy", calibration.getvalue())}
    response = client.post("/import", files=files, data={"name": "linear"}, headers=AUTH)
    assert response.status_code == 202, response.text
    record = wait_for(client, response.json()["job_id"])
    assert (record["status"], record["kind"]) == ("succeeded", "import"), record
    manifest = client.get("/models/linear/versions/1", headers=AUTH).json()
    assert (manifest["source"], manifest["imported"]["file"]) == ("imported", "linear.onnx")
    assert manifest["latent_dim"] is None
