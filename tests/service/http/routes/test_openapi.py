"""/openapi.json, as /docs shows it: the bearer scheme behind the Authorize button, request
examples that fit the default model, and a schema for every answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app


def example(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    (only,) = content["examples"].values()
    return dict(only)


def test_the_bearer_scheme_is_declared_where_the_key_is_checked(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "AESERVE_API_KEY" in scheme["description"]
    paths = document["paths"]
    for path, method in [
        ("/train", "post"),
        ("/datasets", "post"),
        ("/jobs/{job_id}", "delete"),
        ("/models/{name}/versions/{version}/promote", "post"),
        ("/models/{name}/versions/{version}", "delete"),
    ]:
        assert paths[path][method]["security"] == [{"bearer": []}], (path, method)
    assert "security" not in paths["/healthz"]["get"]
    # Inference is open unless AESERVE_INFERENCE_REQUIRES_KEY (test_openapi_security.py).
    assert "security" not in paths["/score"]["post"]
    # The header is the scheme's, not a parameter to fill in by hand.
    train_parameters = paths["/train"]["post"].get("parameters", [])
    assert all(p["name"].lower() != "authorization" for p in train_parameters)


def test_the_bearer_key_from_the_authorize_button_is_accepted(
    client: TestClient, auth: dict[str, str]
) -> None:
    assert client.post("/models/tiny/versions/1/promote").status_code == 401
    assert client.post("/models/tiny/versions/1/promote", headers=auth).status_code == 200


def test_examples_fit_the_default_model_and_work(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    score = example(document, "/score")
    assert "model 'tiny' v1, 4 values" in score["summary"]
    assert score["value"] == {"vectors": [[0.0, 0.0, 0.0, 0.0]], "explain": True}
    assert example(document, "/decode")["value"] == {"codes": [[0.0, 0.0]]}
    for path in ("/encode", "/reconstruct", "/score", "/decode"):
        response = client.post(path, json=example(document, path)["value"])
        assert response.status_code == 200, (path, response.text)


def test_examples_say_they_are_illustrative_before_a_model_is_loaded(tmp_path: Path) -> None:
    settings = Settings(model_repository=ModelRepository(tmp_path / "empty").root)
    with TestClient(create_app(settings)) as client:
        score = example(client.get("/openapi.json").json(), "/score")
    assert score["summary"] == "Illustrative: 4 values a row"
    assert "input_dim" in score["description"]


def test_the_manifest_answer_has_a_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    answer = document["paths"]["/models/{name}/versions/{version}"]["get"]["responses"]["200"]
    reference = answer["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert {"input_dim", "latent_dim", "threshold", "scaling", "training"} <= set(
        schema["properties"]
    )
