"""/openapi.json's links: each names an operation the document has, fills that operation's
parameters from fields its source answer has, and, followed on a real server, reaches the
resource the answer named."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.service.http.routes.conftest import API_KEY, AUTH

BODY = "$response.body#"


@pytest.fixture
def client(repository: ModelRepository) -> Iterator[TestClient]:
    settings = Settings(model_repository=repository.root, default_model="tiny", api_key=API_KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def links(document: dict[str, Any]) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """(method, path, status, name, link) of every link in `document`."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                for name, link in response.get("links", {}).items():
                    yield method, path, status, name, link


def by_id(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        operation["operationId"]: (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def has_field(document: dict[str, Any], schema: dict[str, Any], pointer: str) -> bool:
    """Whether a JSON Pointer (`/models/0/name`) names a field that `schema` describes."""
    if not pointer:
        return True
    head, _, rest = pointer[1:].partition("/")
    rest = f"/{rest}" if rest else ""
    schema = resolve(document, schema)
    alternatives = schema.get("anyOf", []) + schema.get("oneOf", [])
    if any(has_field(document, option, pointer) for option in alternatives):
        return True
    if head.isdigit() and "items" in schema:
        return has_field(document, schema["items"], rest)
    field = schema.get("properties", {}).get(head)
    return field is not None and has_field(document, field, rest)


def answer_schema(operation: dict[str, Any], status: str) -> dict[str, Any]:
    return dict(operation["responses"][status]["content"]["application/json"]["schema"])


def expressions(value: Any, at: str = "") -> Iterator[tuple[str, str]]:
    """(where in the body, expression) of every runtime expression in a link's request body."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from expressions(item, f"{at}/{key}")
    elif isinstance(value, str) and value.startswith(BODY):
        yield at, value


def evaluate(expression: str, answer: Any) -> Any:
    """`$response.body#/a/0/b` read from the answer's JSON body."""
    assert expression.startswith(BODY), expression
    for segment in expression[len(BODY) :].split("/")[1:]:
        answer = answer[int(segment)] if isinstance(answer, list) else answer[segment]
    return answer


def follow(
    client: TestClient, document: dict[str, Any], link: dict[str, Any], answer: Any
) -> tuple[str, Any]:
    """Call the link's operation with the parameters it takes from `answer`; return its method
    and response."""
    method, path, _ = by_id(document)[link["operationId"]]
    for name, expression in link["parameters"].items():
        path = path.replace(f"{{{name}}}", str(evaluate(expression, answer)))
    assert "{" not in path, path
    return method, client.request(method, path, headers=AUTH)


def test_every_link_names_an_operation_and_fields_its_answer_has(
    document: dict[str, Any],
) -> None:
    operations = by_id(document)
    found = list(links(document))
    assert len(found) > 100
    for method, path, status, name, link in found:
        where = f"{method.upper()} {path} {status} {name}"
        source = answer_schema(document["paths"][path][method], status)
        _, _, target = operations[link["operationId"]]
        taken = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
        given = link.get("parameters", {})
        assert set(given) <= {p["name"] for p in target.get("parameters", [])}, where
        # Every path parameter the target needs comes from the answer.
        assert taken <= set(given), where
        for expression in given.values():
            assert expression.startswith(BODY), where
            assert has_field(document, source, expression[len(BODY) :]), (where, expression)
        body = link.get("requestBody")
        if body is not None:
            request = target["requestBody"]["content"]["application/json"]["schema"]
            for at, expression in expressions(body):
                assert has_field(document, request, at), (where, at)
                assert has_field(document, source, expression[len(BODY) :]), (where, expression)
        assert re.fullmatch(r"[A-Za-z0-9.\-_]+", name), where  # OpenAPI's pattern for link names


def test_the_training_workflow_is_linked(document: dict[str, Any]) -> None:
    named = {(m, p, s): set() for m, p, s, _, _ in links(document)}
    for method, path, status, name, _ in links(document):
        named[(method, path, status)].add(name)
    datasets = {"GetDataset", "DeleteDataset", "TrainOnDataset"}
    jobs = {"GetJob", "CancelJob", "JobEvents"}
    assert named[("post", "/datasets", "201")] == datasets
    assert named[("get", "/datasets/{dataset}", "200")] == datasets
    assert named[("post", "/train", "202")] == jobs
    assert named[("post", "/import", "202")] == jobs
    assert named[("get", "/jobs/{job_id}", "200")] == {"GetDataset", "DeleteDataset", "GetModel"}
    version = {"GetVersion", "DeleteVersion", "PromoteVersion", "GetCalibration", "GetTraffic"}
    for source in [
        ("get", "/models", "200"),
        ("post", "/score", "200"),
        ("post", "/encode", "200"),
    ]:
        assert version | {"GetModel", "GetV2Version", "V2InferVersion"} <= named[source], source
    train = document["paths"]["/datasets"]["post"]["responses"]["201"]["links"]["TrainOnDataset"]
    assert train["requestBody"] == {"data": {"dataset": "$response.body#/dataset"}}


def test_an_uploaded_dataset_is_reached_by_its_links(
    client: TestClient, document: dict[str, Any]
) -> None:
    upload = document["paths"]["/datasets"]["post"]
    media = upload["requestBody"]["content"]["multipart/form-data"]
    disposition = media["encoding"]["file"]["headers"]["Content-Disposition"]["example"]
    filename = re.search(r'filename="([^"]+)"', disposition)
    assert filename is not None
    (example,) = media["examples"].values()
    files = {"file": (filename[1], example["value"]["file"].encode())}
    created = client.post("/datasets", files=files, headers=AUTH)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["rows"], answer["dim"]) == (10, 4)
    assert answer["feature_names"] == ["f0", "f1", "f2", "f3"]
    by_name = upload["responses"]["201"]["links"]
    method, got = follow(client, document, by_name["GetDataset"], answer)
    assert (method, got.status_code, got.json()) == ("get", 200, answer)
    method, deleted = follow(client, document, by_name["DeleteDataset"], answer)
    assert (method, deleted.status_code, deleted.json()) == ("delete", 200, answer)
    _, gone = follow(client, document, by_name["GetDataset"], answer)
    assert gone.status_code == 404


@pytest.mark.parametrize("source", [("post", "/score"), ("get", "/models")])
def test_the_model_an_answer_names_is_reached_by_its_links(
    client: TestClient, document: dict[str, Any], source: tuple[str, str]
) -> None:
    method, path = source
    answer = client.request(
        method, path, json={"vectors": [[0.0, 0.0, 0.0, 0.0]]} if method == "post" else None
    )
    assert answer.status_code == 200, answer.text
    reached = []
    for name, link in document["paths"][path][method]["responses"]["200"]["links"].items():
        if not name.startswith("Get"):  # the GETs: the others change or infer
            continue
        got_method, got = follow(client, document, link, answer.json())
        assert (got_method, got.status_code) == ("get", 200), (name, got.text)
        reached.append(got.json())
    assert len(reached) >= 8
    # Each answer is about the model (and version) the source answer named: tiny, v1.
    for body in reached:
        assert body.get("name", body.get("model", {}).get("name")) == "tiny", body
