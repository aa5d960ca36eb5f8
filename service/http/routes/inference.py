"""/encode, /decode, /reconstruct, /score: JSON or `.npy` in, JSON or `.npy` out.

The routes are coroutines: inference goes to the model version's dynamic batcher, which runs
onnxruntime on its own thread, so a request costs no threadpool hop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from service.http.deps import (
    AcceptDep,
    DecodeBatchDep,
    EncodeBatchDep,
    InferenceKey,
    MetricsDep,
    ReconstructBatchDep,
    RuntimeDep,
    ScoreBatchDep,
)
from service.http.encoding import NPY, NPZ
from service.http.responses import array_response, check_score_answer, score_response
from service.http.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    ReconstructionResponse,
    ReconstructRequest,
    ScoreRequest,
    ScoreResponse,
)

router = APIRouter(tags=["inference"], dependencies=[InferenceKey])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 404, 413, 415, 422, 503)
}


def _body(schema: type[Any]) -> dict[str, Any]:
    """Document both body formats; the body is read by the route's batch dependency."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema.model_json_schema()},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


@router.post(
    "/encode", response_model=EncodeResponse, responses=_ERRORS, openapi_extra=_body(EncodeRequest)
)
async def encode(runtime: RuntimeDep, batch: EncodeBatchDep, accept: AcceptDep = None) -> Response:
    """Bottleneck codes z = f(x) for each row."""
    codes = await runtime.encode_async(batch.array)
    return array_response(runtime.name, runtime.version, "codes", codes, accept)


@router.post(
    "/decode",
    response_model=ReconstructionResponse,
    responses=_ERRORS,
    openapi_extra=_body(DecodeRequest),
)
async def decode(runtime: RuntimeDep, batch: DecodeBatchDep, accept: AcceptDep = None) -> Response:
    """Rows g(z) in input units for each code."""
    rows = await runtime.decode_async(batch.array)
    return array_response(runtime.name, runtime.version, "reconstructions", rows, accept)


@router.post(
    "/reconstruct",
    response_model=ReconstructionResponse,
    responses=_ERRORS,
    openapi_extra=_body(ReconstructRequest),
)
async def reconstruct(
    runtime: RuntimeDep, batch: ReconstructBatchDep, accept: AcceptDep = None
) -> Response:
    """g(f(x)) for each row, in input units."""
    rows = await runtime.reconstruct_async(batch.array)
    return array_response(runtime.name, runtime.version, "reconstructions", rows, accept)


_SCORE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON; or with `Accept: application/x-npy` the scores alone as .npy; or "
        "with `Accept: application/x-npz` every field as one .npz archive. Binary answers name "
        "the model in `X-Model-Name` and `X-Model-Version`.",
        "content": {
            NPY: {"schema": {"type": "string", "format": "binary"}},
            NPZ: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    406: {
        "model": ErrorResponse,
        "description": "`Accept: application/x-npy` with `threshold` or `explain`: a .npy answer "
        "holds the scores only (ask for application/x-npz).",
    },
}


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={**_ERRORS, **_SCORE_ANSWERS},
    openapi_extra=_body(ScoreRequest),
)
async def score(
    runtime: RuntimeDep, batch: ScoreBatchDep, metrics: MetricsDep, accept: AcceptDep = None
) -> Response:
    """Anomaly score (reconstruction loss), flag and conformal p-value for each row."""
    options = batch.options
    check_score_answer(accept, options.threshold, options.explain, batch.top)
    result = await runtime.score_async(batch.array, options.threshold, options.explain, batch.top)
    metrics.observe_score_result(runtime, result)
    return score_response(runtime.name, runtime.version, result, accept, runtime.feature_names)
