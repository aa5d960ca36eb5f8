"""/models: listing, manifests, promote and delete, with the API key."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from core.manifest import MANIFEST, Manifest
from core.repository import ModelRepository, sha256_of
from core.settings import Settings
from service.http.app import create_app
from tests.service.http.routes.conftest import AUTH
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
                "feature_names": None,
                "version_details": [
                    {
                        "version": 1,
                        "created_at": "2026-01-01T00:00:00+00:00",
                        "threshold": response.json()["models"][0]["version_details"][0][
                            "threshold"
                        ],
                        "active": True,
                        "input_dim": 4,
                        "latent_dim": 2,
                        "loss": "mse",
                        "feature_names": None,
                    }
                ],
            }
        ]
    }


def test_models_list_each_version_with_its_latent_size_and_feature_names(
    client: TestClient, repository: ModelRepository
):
    names = ["age", "pulse", "pressure", "oxygen"]
    publish_tiny_model(repository, "tiny", latent_dim=3, feature_names=names, promote=False)
    (model,) = client.get("/models").json()["models"]
    assert model["latent_dim"] == 2 and model["feature_names"] is None  # v1 is active
    assert [(v["version"], v["latent_dim"]) for v in model["version_details"]] == [(1, 2), (2, 3)]
    assert model["version_details"][1]["feature_names"] == names
    client.post("/models/tiny/versions/2/promote", headers=AUTH).raise_for_status()
    (model,) = client.get("/models").json()["models"]
    assert (model["latent_dim"], model["feature_names"]) == (3, names)


def test_get_model_and_manifest(client: TestClient, repository: ModelRepository):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    body = client.get("/models/tiny").json()
    assert body["versions"] == [1, 2]
    assert body["active_version"] == 1
    assert [v["active"] for v in body["version_details"]] == [True, False]
    manifest = client.get("/models/tiny/versions/2", headers=AUTH).json()
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
    response = client.get("/models/tiny/versions/1", headers=AUTH)
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
    response = client.get("/models/tiny/versions/7", headers=AUTH)
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
    assert details[1] == {
        "version": 2,
        "created_at": None,
        "threshold": None,
        "active": False,
        "input_dim": None,
        "latent_dim": None,
        "loss": None,
        "feature_names": None,
    }
    assert details[0]["created_at"] == "2026-01-01T00:00:00+00:00"
    response = client.get("/models/tiny/versions/2", headers=AUTH)
    assert response.status_code == 500
    assert response.json()["detail"] == (
        f"version folder {str(path.parent)!r}: manifest.json: loss: Input should be 'mse' or 'bce'"
    )


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_promote_refuses_a_version_whose_files_fail_their_checksum(
    client: TestClient, settings: Settings, repository: ModelRepository, auth
):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    flip_a_byte(repository.version_dir("tiny", 2) / "autoencoder.onnx")
    response = client.post("/models/tiny/versions/2/promote", headers=auth)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "model 'tiny' v2: autoencoder.onnx does not match its sha256 checksum; "
        "v2 was not promoted"
    }
    assert repository.active_version("tiny") == 1
    listed = client.get("/models").json()["models"][0]
    assert (listed["active_version"], listed["loaded_version"]) == (1, 1)
    # The next start finds a pointer it can serve.
    with TestClient(create_app(settings)) as restarted:
        assert restarted.get("/readyz").status_code == 200
        scored = restarted.post("/score", json={"vectors": [ROW]}).json()
        assert scored["model"] == {"name": "tiny", "version": 1}


def test_promote_re_hashes_a_version_loaded_before_its_files_changed(
    client: TestClient, repository: ModelRepository, auth
):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    pinned = client.post("/score?version=2", json={"vectors": [ROW]})
    assert pinned.json()["model"] == {"name": "tiny", "version": 2}  # now cached in memory
    flip_a_byte(repository.version_dir("tiny", 2) / "encoder.onnx")
    response = client.post("/models/tiny/versions/2/promote", headers=auth)
    assert response.status_code == 409
    assert "encoder.onnx does not match its sha256 checksum" in response.json()["detail"]
    assert repository.active_version("tiny") == 1
    scored = client.post("/score", json={"vectors": [ROW]}).json()
    assert scored["model"] == {"name": "tiny", "version": 1}


def test_promote_refuses_a_version_that_does_not_load(
    client: TestClient, repository: ModelRepository, auth
):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    folder = repository.version_dir("tiny", 2)
    (folder / "decoder.onnx").write_bytes(b"not an onnx graph")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["decoder.onnx"] = sha256_of(folder / "decoder.onnx")  # checksums agree
    (folder / MANIFEST).write_text(json.dumps(manifest))
    response = client.post("/models/tiny/versions/2/promote", headers=auth)
    assert response.status_code == 409
    assert response.json()["detail"].startswith("model 'tiny' v2: decoder.onnx cannot be loaded")
    assert response.json()["detail"].endswith("; v2 was not promoted")
    assert repository.active_version("tiny") == 1


def test_after_promote_this_process_serves_what_models_says(
    client: TestClient, repository: ModelRepository, auth
):
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    client.post("/score?version=2", json={"vectors": [ROW]})  # cached before it is promoted
    assert client.post("/models/tiny/versions/2/promote", headers=auth).status_code == 200
    listed = client.get("/models").json()["models"][0]
    assert (listed["active_version"], listed["loaded_version"]) == (2, 2)
    assert client.post("/models/tiny/versions/1/promote", headers=auth).status_code == 200
    listed = client.get("/models").json()["models"][0]
    assert (listed["active_version"], listed["loaded_version"]) == (1, 1)


def test_promote_or_delete_of_an_unknown_model_creates_nothing(
    client: TestClient, repository: ModelRepository, auth
):
    for method, path in (
        ("DELETE", "/models/ghost/versions/1"),
        ("POST", "/models/ghost/versions/1/promote"),
    ):
        response = client.request(method, path, headers=auth)
        assert response.status_code == 404
        assert response.json() == {"detail": "model 'ghost' not found"}
    assert not (repository.root / "ghost").exists()
    assert [m["name"] for m in client.get("/models").json()["models"]] == ["tiny"]
