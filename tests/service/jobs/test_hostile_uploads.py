"""POST /datasets with crafted files: a 4xx naming the problem, and nothing stored."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app
from tests.crafted_npy import CRAFTED
from tests.service.jobs.conftest import Deploy, Deployment, start_deployment
from tests.service.jobs.helpers import API_KEY, AUTH


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    return start_deployment(request, deploy, "local")


def as_npz(member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", member)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(CRAFTED))
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_crafted_npy_header_is_a_422(
    client: TestClient, deployment: Deployment, case: str, suffix: str
) -> None:
    content = CRAFTED[case] if suffix == ".npy" else as_npz(CRAFTED[case])
    response = client.post("/datasets", files={"file": (f"rows{suffix}", content)}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert f"not a readable {suffix} file" in response.json()["detail"]
    assert client.get("/datasets", headers=AUTH).json() == []


def test_stored_datasets_are_read_with_the_key_only(client: TestClient) -> None:
    stored = client.post("/datasets", files={"file": ("rows.csv", b"1,2\n3,4\n")}, headers=AUTH)
    dataset = stored.json()["dataset"]
    for path in ("/datasets", f"/datasets/{dataset}"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="aeserve"'
        assert client.get(path, headers=AUTH).status_code == 200


def test_a_model_too_large_to_train_is_refused_at_submit(client: TestClient) -> None:
    rows = [[float(i % 7), float(i % 5), float(i % 3), 1.0] for i in range(40)]
    body = {"name": "huge", "data": {"vectors": rows}, "config": {"hidden_dims": [10**6, 10**6]}}
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json() == {
        "detail": "config: hidden_dims [1000000, 1000000] with latent_dim 2 make a model of "
        "2,000,016,000,006 parameters for 4 features; this server takes at most 50,000,000 "
        "(AESERVE_MAX_PARAMETERS): use narrower or fewer layers"
    }
    assert client.get("/jobs", headers=AUTH).json()["jobs"] == []


def test_the_parameter_cap_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(model_repository=tmp_path, api_key=API_KEY, max_parameters=1000)
    rows = [[float(i % 7), float(i % 5), float(i % 3), 1.0] for i in range(40)]
    body = {"name": "wide", "data": {"vectors": rows}, "config": {"hidden_dims": [64, 32]}}
    with TestClient(create_app(settings)) as client:
        response = client.post("/train", json=body, headers=AUTH)
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "config: hidden_dims [64, 32] with latent_dim 2 make a model of 4,934 parameters for 4 "
            "features; this server takes at most 1,000 "
            "(AESERVE_MAX_PARAMETERS): use narrower or fewer layers"
        )
        body["config"] = {"hidden_dims": [8], "latent_dim": 2}
        assert client.post("/train", json=body, headers=AUTH).status_code == 202
