"""/models: listing, manifests, promote and delete, with the API key."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from core.manifest import MANIFEST, Manifest
from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model

ROW = [0.1, 0.2, 0.3, 0.4]


def test_list_models(client: TestClient):
    response = client.get("/models")
    assert response.status_code == 200
    assert response.json() == {
        "models": [
            {
                "name": "tiny",
                "versions": [1],
                "active_version": 1,
                "input_dim": 4,
                "latent_dim": 2,
                "loss": "mse",
                "loaded_version": 1,
            }
        ]
    }


def test_get_model_and_manifest(client: TestClient, repository: ModelRepository):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    body = client.get("/models/tiny").json()
    assert body["versions"] == [1, 2]
    assert body["active_version"] == 1
    assert [v["active"] for v in body["version_details"]] == [True, False]
    manifest = client.get("/models/tiny/versions/2").json()
    assert manifest == json.loads((repository.version_dir("tiny", 2) / MANIFEST).read_text())
    assert Manifest.model_validate(manifest) == repository.manifest("tiny", 2)
    assert set(manifest["files"]) >= {"autoencoder.onnx", "encoder.onnx", "decoder.onnx"}


def test_the_manifest_is_served_with_the_fields_this_server_does_not_know(
    client: TestClient, repository: ModelRepository
):
    path = repository.version_dir("tiny", 1) / MANIFEST
    written = json.loads(path.read_text())
    written["drift_baseline"] = {"psi": [0.1, 0.2]}
    written["training"]["gpu"] = "H200"
    del written["versions"]["onnx"]  # an optional field left out stays out
    path.write_text(json.dumps(written))
    response = client.get("/models/tiny/versions/1")
    assert response.status_code == 200
    assert response.json() == written


def test_the_manifest_route_has_the_manifest_schema(client: TestClient):
    spec = client.get("/openapi.json").json()
    get = spec["paths"]["/models/{name}/versions/{version}"]["get"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Manifest"}
    manifest = spec["components"]["schemas"]["Manifest"]
    assert {"input_dim", "threshold", "graphs", "files"} <= set(manifest["required"])
    assert manifest["additionalProperties"] is True


def test_unknown_model_and_version_are_404(client: TestClient):
    assert client.get("/models/nope").json() == {"detail": "model 'nope' not found"}
    assert client.get("/models/nope").status_code == 404
    response = client.get("/models/tiny/versions/7")
    assert response.status_code == 404
    assert response.json() == {"detail": "model 'tiny' has no version 7"}


def test_promote_needs_the_key(client: TestClient, repository: ModelRepository):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    response = client.post("/models/tiny/versions/2/promote")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "missing or invalid API key: send 'Authorization: Bearer <key>'"
    }
    wrong = client.post("/models/tiny/versions/2/promote", headers={"authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert repository.active_version("tiny") == 1


def test_promote_switches_this_process_at_once(client: TestClient, repository, auth):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    response = client.post("/models/tiny/versions/2/promote", headers=auth)
    assert response.status_code == 200
    assert response.json() == {"name": "tiny", "active_version": 2}
    assert repository.active_version("tiny") == 2
    scored = client.post("/score", json={"vectors": [ROW]}).json()
    assert scored["model"] == {"name": "tiny", "version": 2}


def test_promote_unknown_version(client: TestClient, auth):
    response = client.post("/models/tiny/versions/5/promote", headers=auth)
    assert response.status_code == 404
    assert response.json() == {"detail": "model 'tiny' has no version 5"}


def test_delete_version(client: TestClient, repository: ModelRepository, auth):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    assert client.delete("/models/tiny/versions/2").status_code == 401
    response = client.delete("/models/tiny/versions/2", headers=auth)
    assert response.status_code == 204
    assert repository.versions("tiny") == [1]
    assert client.delete("/models/tiny/versions/2", headers=auth).status_code == 404
    pinned = client.post("/score?version=2", json={"vectors": [ROW]})
    assert pinned.status_code == 404


def test_deleting_the_active_version_is_409(client: TestClient, auth):
    response = client.delete("/models/tiny/versions/1", headers=auth)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "model 'tiny' v1 is the active version; promote another first"
    }


def test_inference_is_open_unless_configured(client: TestClient):
    assert client.post("/score", json={"vectors": [ROW]}).status_code == 200


def test_a_version_with_a_corrupt_manifest_is_listed_without_its_details(
    client: TestClient, repository: ModelRepository
):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    path = repository.version_dir("tiny", 2) / MANIFEST
    path.write_text(path.read_text().replace('"loss": "mse"', '"loss": "hinge"', 1))
    details = client.get("/models/tiny").json()["version_details"]
    assert details[1] == {"version": 2, "created_at": None, "threshold": None, "active": False}
    assert details[0]["created_at"] == "2026-01-01T00:00:00+00:00"
    response = client.get("/models/tiny/versions/2")
    assert response.status_code == 500
    assert response.json()["detail"] == (
        f"version folder {str(path.parent)!r}: manifest.json: loss: Input should be 'mse' or 'bce'"
    )
