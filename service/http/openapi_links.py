"""The OpenAPI document's links: which answer names the resource another operation takes.

A client that uploads a dataset gets its id back and trains on it; the job its answer names
names its model; every inference answer and model listing names a model and a version. Each link
says which field of an answer fills which parameter of the next call (`$response.body#/…`), so a
reader, or a tool that chains calls (schemathesis's stateful phase, tests/service/test_fuzz.py),
need not guess.
"""

from __future__ import annotations

import copy
from typing import Any

Target = tuple[str, str]
"""An operation: its method and path."""
Source = tuple[str, str, str]
"""An answer: its operation's method and path, and its status."""

MODEL_ROUTES: dict[str, Target] = {
    "GetModel": ("get", "/models/{name}"),
    "GetV2Model": ("get", "/v2/models/{name}"),
    "GetV2ModelReady": ("get", "/v2/models/{name}/ready"),
    "GetV2ModelConfig": ("get", "/v2/models/{name}/config"),
    "V2Infer": ("post", "/v2/models/{name}/infer"),
}
"""Operations on a model by its name alone (its active version)."""

VERSION_ROUTES: dict[str, Target] = {
    "GetVersion": ("get", "/models/{name}/versions/{version}"),
    "DeleteVersion": ("delete", "/models/{name}/versions/{version}"),
    "PromoteVersion": ("post", "/models/{name}/versions/{version}/promote"),
    "GetCalibration": ("get", "/models/{name}/versions/{version}/calibration"),
    "GetTraffic": ("get", "/models/{name}/versions/{version}/traffic"),
    "GetV2Version": ("get", "/v2/models/{name}/versions/{version}"),
    "GetV2VersionReady": ("get", "/v2/models/{name}/versions/{version}/ready"),
    "GetV2VersionConfig": ("get", "/v2/models/{name}/versions/{version}/config"),
    "V2InferVersion": ("post", "/v2/models/{name}/versions/{version}/infer"),
}
"""Operations on one version of a model."""

JOB_ROUTES: dict[str, Target] = {
    "GetJob": ("get", "/jobs/{job_id}"),
    "CancelJob": ("delete", "/jobs/{job_id}"),
    "JobEvents": ("get", "/jobs/{job_id}/events"),
}
DATASET_ROUTES: dict[str, Target] = {
    "GetDataset": ("get", "/datasets/{dataset}"),
    "DeleteDataset": ("delete", "/datasets/{dataset}"),
}


def _links(routes: dict[str, Target], **parameters: str) -> dict[str, dict[str, Any]]:
    """One link to each of `routes`, every parameter from the same `$response.body` pointer."""
    body = {name: f"$response.body#{pointer}" for name, pointer in parameters.items()}
    return {name: {"target": target, "parameters": body} for name, target in routes.items()}


def _model(name: str, version: str) -> dict[str, dict[str, Any]]:
    """Links to the model the `name` pointer names, and to the version `version` names."""
    return {**_links(MODEL_ROUTES, name=name), **_links(VERSION_ROUTES, name=name, version=version)}


_TRAIN_ON_IT = {
    "TrainOnDataset": {
        "target": ("post", "/train"),
        "requestBody": {"data": {"dataset": "$response.body#/dataset"}},
        "description": "Train a model on this dataset: its id is `data.dataset`.",
    }
}
_DATASET = {**_links(DATASET_ROUTES, dataset="/dataset"), **_TRAIN_ON_IT}
_JOB = _links(JOB_ROUTES, job_id="/job_id")
_ANSWERED_BY = _model("/model/name", "/model/version")

LINKS: dict[Source, dict[str, dict[str, Any]]] = {
    ("post", "/datasets", "201"): _DATASET,
    ("get", "/datasets/{dataset}", "200"): _DATASET,
    ("post", "/train", "202"): _JOB,
    ("post", "/import", "202"): _JOB,
    # A job names its model from the start, the version only once it succeeded (`result`), so
    # it links to the model, whose answer lists that version then.
    ("get", "/jobs/{job_id}", "200"): {
        **_links(DATASET_ROUTES, dataset="/dataset"),
        **_links({"GetModel": MODEL_ROUTES["GetModel"]}, name="/name"),
    },
    ("delete", "/jobs/{job_id}", "200"): _links({"GetJob": JOB_ROUTES["GetJob"]}, job_id="/job_id"),
    ("get", "/models", "200"): _model("/models/0/name", "/models/0/active_version"),
    ("get", "/models/{name}", "200"): _model("/name", "/active_version"),
    ("post", "/models/{name}/versions/{version}/promote", "200"): _model(
        "/name", "/active_version"
    ),
    ("get", "/v2/models/{name}", "200"): _model("/name", "/versions/0"),
    ("post", "/encode", "200"): _ANSWERED_BY,
    ("post", "/decode", "200"): _ANSWERED_BY,
    ("post", "/reconstruct", "200"): _ANSWERED_BY,
    ("post", "/score", "200"): _ANSWERED_BY,
}
"""Per answer, its links by name."""


def document_links(document: dict[str, Any]) -> dict[str, Any]:
    """Add (in place, and return `document`) each link of LINKS whose answer and target the
    document has, naming the target by its `operationId`."""
    paths: dict[str, dict[str, Any]] = document.get("paths", {})
    for (method, path, status), links in LINKS.items():
        operation = paths.get(path, {}).get(method, {})
        response = operation.get("responses", {}).get(status)
        if response is None:
            continue
        for name, link in links.items():
            target_method, target_path = link["target"]
            target = paths.get(target_path, {}).get(target_method, {})
            if "operationId" not in target:
                continue
            rest = {key: value for key, value in link.items() if key != "target"}
            documented = {"operationId": target["operationId"], **copy.deepcopy(rest)}
            response.setdefault("links", {})[name] = documented
    return document
