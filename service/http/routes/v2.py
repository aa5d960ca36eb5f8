"""/v2: the Open Inference Protocol (KServe / Triton REST), binary tensor extension included.

Every model route answers under `/v2/models/{name}` and, pinned to a version, under
`/v2/models/{name}/versions/{version}`. Errors are `{"error": …}`, as the protocol has them.
Inference goes through the version's dynamic batcher (`ModelRuntime.infer_async`), like the
REST routes, and its configuration says so (`dynamic_batching`) when batching is on.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from core.errors import NotReady
from service.http.deps import InferenceKey, RepositoryDep
from service.http.openapi_schemas import inline_schema
from service.v2 import model_metadata as protocol
from service.v2 import tensors, wire
from service.v2.deps import InferenceDep, ModelDep
from service.v2.schemas import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelConfig,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

MODEL = "/models/{name}"
VERSION = "/models/{name}/versions/{version}"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 415, 503)
}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(InferenceRequest)},
            wire.BINARY: {
                "schema": {"type": "string", "format": "binary"},
                "description": f"The JSON header, its length in {wire.HEADER}, then tensors.",
            },
        },
    }
}


@router.get("", response_model=ServerMetadata)
def server_metadata() -> ServerMetadata:
    """Server name, version and protocol extensions."""
    return protocol.server_metadata()


@router.get("/health/live", response_model=ServerLive)
def server_live() -> ServerLive:
    """The process answers."""
    return ServerLive(live=True)


@router.get("/health/ready", response_model=ServerReady, responses=_ERRORS)
def server_ready(request: Request) -> ServerReady:
    """Ready as /readyz is: a configured default model is loaded, else every active version."""
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise NotReady("the model repository has not been read yet")
    ready, reason = registry.readiness()
    if not ready:
        raise NotReady(reason)
    return ServerReady(ready=True)


@router.get(MODEL, response_model=ModelMetadata, responses=_ERRORS)
@router.get(VERSION, response_model=ModelMetadata, responses=_ERRORS)
def model_metadata(model: ModelDep, repository: RepositoryDep) -> ModelMetadata:
    """Versions, platform, and each input and output with its datatype and shape."""
    return protocol.metadata(model, repository)


@router.get(f"{MODEL}/ready", response_model=ModelReady, responses=_ERRORS)
@router.get(f"{VERSION}/ready", response_model=ModelReady, responses=_ERRORS)
def model_ready(model: ModelDep) -> ModelReady:
    """200 once the model (at that version) is loaded and answers."""
    return ModelReady(name=model.name, version=str(model.runtime.version), ready=True)


# Unset fields are left out, not null: Triton's own configuration JSON has no nulls.
@router.get(
    f"{MODEL}/config",
    response_model=ModelConfig,
    responses=_ERRORS,
    response_model_exclude_none=True,
)
@router.get(
    f"{VERSION}/config",
    response_model=ModelConfig,
    responses=_ERRORS,
    response_model_exclude_none=True,
)
def model_config(model: ModelDep) -> ModelConfig:
    """The model in Triton's configuration shape, as perf_analyzer reads it."""
    return protocol.config(model)


@router.post(
    f"{MODEL}/infer",
    response_model=InferenceResponse,
    responses=_ERRORS,
    dependencies=[InferenceKey],
    openapi_extra=_INFER_BODY,
)
@router.post(
    f"{VERSION}/infer",
    response_model=InferenceResponse,
    responses=_ERRORS,
    dependencies=[InferenceKey],
    openapi_extra=_INFER_BODY,
)
async def infer(model: ModelDep, inference: InferenceDep) -> Response:
    """Run the model on the request's tensors; outputs answer as JSON or binary data.

    Rows are merged with concurrent requests for the same version, graph and outputs by the
    version's dynamic batcher, as on the REST routes.
    """
    # Fetched in the model's order, so requests naming the same outputs share one batch.
    asked = set(inference.output_names)
    wanted = [spec.name for spec in model.outputs if spec.name in asked]
    results = await model.runtime.infer_async(model.graph, inference.arrays, wanted)
    return wire.response(*tensors.encode(model, inference, results))
