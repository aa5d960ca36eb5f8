"""Dependencies, as `Annotated` aliases, so a route's signature reads like a sentence.

The aliases resolve through `async def` functions although none of them awaits anything: FastAPI
runs a plain `def` dependency in its threadpool, a thread hop per dependency per request, which
cost the inference routes more than the inference itself. The plain getters stay for direct calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Scope

from core.datasets import DatasetStore
from core.errors import NotReady
from core.repository import Repository
from core.settings import Settings
from service.http import offload
from service.http.auth import check_key
from service.http.bodies import (
    RowCount,
    ScoreOptions,
    count_brackets,
    is_npy,
    read_batch,
    score_options,
)
from service.http.schemas import (
    DecodeRequest,
    EncodeRequest,
    ReconstructRequest,
    ScoreOptionFields,
    ScoreRequest,
)
from service.inference.registry import ModelRegistry
from service.inference.runtime import ModelRuntime
from service.jobs.backend import JobBackend
from service.observability.metrics import Metrics


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise NotReady("the server is starting; no model is loaded yet")
    return registry


def get_repository(request: Request) -> Repository:
    repository: Repository = request.app.state.repository
    return repository


async def _settings(request: Request) -> Settings:
    return get_settings(request)


async def _metrics(request: Request) -> Metrics:
    return get_metrics(request)


async def _registry(request: Request) -> ModelRegistry:
    return get_registry(request)


async def _repository(request: Request) -> Repository:
    return get_repository(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
RepositoryDep = Annotated[Repository, Depends(_repository)]
AcceptDep = Annotated[str | None, Header(include_in_schema=False)]


BEARER = HTTPBearer(
    scheme_name="bearer",
    description="The server's AESERVE_API_KEY. Needed when a key is set by /train, /import, "
    "/datasets, /jobs, a version's manifest and calibration, promote and delete; by inference "
    "with AESERVE_INFERENCE_REQUIRES_KEY.",
    auto_error=False,
)
"""Declares the scheme (the Authorize button of /docs); check_key reads the header itself, so
every malformed header gets the same 401."""
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


async def require_key(settings: SettingsDep, request: Request, _: BearerDep = None) -> None:
    check_key(settings, request.headers.get("authorization"))


async def require_key_for_inference(request: Request, _: BearerDep = None) -> None:
    settings = get_settings(request)
    if settings.inference_requires_key:
        check_key(settings, request.headers.get("authorization"))


AdminKey = Depends(require_key)
InferenceKey = Depends(require_key_for_inference)


async def get_runtime(
    request: Request,
    model: Annotated[str | None, Query(description="Model name; default model if omitted.")] = None,
    version: Annotated[
        int | None, Query(ge=1, description="Model version; the active one if omitted.")
    ] = None,
) -> ModelRuntime:
    return await resolve_runtime(request.scope, model, version)


async def resolve_runtime(scope: Scope, model: str | None, version: int | None) -> ModelRuntime:
    """The runtime a request names, for the routes and the fast lane alike; the request's
    state gets the model and version that answer, which the metrics middleware labels it with."""
    registry: ModelRegistry | None = getattr(scope["app"].state, "registry", None)
    if registry is None:
        raise NotReady("the server is starting; no model is loaded yet")
    # Loading a version that is not cached blocks, so only that rare case leaves the event loop.
    runtime = await registry.get_async(model, version)
    state = scope.setdefault("state", {})
    state["model_name"] = runtime.name
    state["model_version"] = runtime.version
    return runtime


RuntimeDep = Annotated[ModelRuntime, Depends(get_runtime)]


@dataclass(frozen=True)
class Batch:
    """The request's matrix and, for /score, its options."""

    array: np.ndarray
    options: ScoreOptions
    top: int | None = None
    """/score's `top`: the body's field, else the query's."""


BatchSchema = type[EncodeRequest | ReconstructRequest | ScoreRequest | DecodeRequest]


async def decode_batch(
    scope: Scope,
    body: bytes,
    content_type: str,
    schema: BatchSchema,
    runtime: ModelRuntime,
    metrics: Metrics,
    route: str,
    threshold: float | None = None,
    explain: bool = False,
    top: int | None = None,
    brackets: int | None = None,
) -> Batch:
    """The request's matrix, checked against the model, and its /score options: a large JSON
    body parsed in a worker process (service/http/offload.py), a `.npy` one here, as its decoding
    reads only its header and views the rest: a thread hop cost an 800 KB body more loop time than
    all else it needs (waking the thread was 40% of the loop's time at batch 256).
    `brackets`: a JSON body's count of `[`, where its chunks were counted as they arrived."""
    dim = runtime.codes_width() if schema is DecodeRequest else runtime.input_dim
    max_rows = runtime.options.max_batch
    arguments = (body, content_type, schema, dim, runtime.label, max_rows)
    size = len(body)
    if is_npy(content_type):
        array, parsed = read_batch(*arguments)
    else:
        # Rows counted first: a body of too many rows is refused without being copied to the
        # process that would parse it.
        if brackets is None:
            brackets = await offload.decode(scope, size, count_brackets, body, max_rows)
        array, parsed = await offload.parse(scope, size, read_batch, *arguments, brackets)
    metrics.observe_batch(route, runtime.name, len(array))
    if isinstance(parsed, ScoreRequest | ScoreOptionFields) and "top" in parsed.model_fields_set:
        top = parsed.top  # a JSON body's field wins, as for threshold and explain
    return Batch(array, score_options(parsed, threshold, explain), top)


ThresholdQuery = Annotated[
    float | None,
    Query(
        allow_inf_nan=False,
        description="Overrides the model's calibrated threshold for `anomalies`; a JSON body's "
        "`threshold` field wins. The way to set it with a `.npy` body.",
    ),
]
ExplainQuery = Annotated[
    bool,
    Query(
        description="Also return per-feature losses; a JSON body's `explain` field wins. The way "
        "to ask with a `.npy` body.",
    ),
]
TopQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description="Also return the k worst features of each row, by name; a JSON body's `top` "
        "field wins. The way to ask with a `.npy` body.",
    ),
]
# The other routes take the same query string (one fast lane reads them all) but ignore the options.
IgnoredThreshold = Annotated[float | None, Query(include_in_schema=False, allow_inf_nan=False)]
IgnoredExplain = Annotated[bool, Query(include_in_schema=False)]
IgnoredTop = Annotated[int | None, Query(include_in_schema=False, ge=1)]


async def _read(
    request: Request,
    schema: BatchSchema,
    runtime: ModelRuntime,
    threshold: float | None,
    explain: bool,
    top: int | None = None,
) -> Batch:
    content_type = request.headers.get("content-type", "")
    rows = None if is_npy(content_type) else RowCount(runtime.options.max_batch)
    chunks: list[bytes] = []
    async for chunk in request.stream():
        if rows is None or rows.keep(chunk):
            chunks.append(chunk)
        else:
            chunks.clear()  # a body of too many rows: counted to its end, not kept
    if rows is not None:
        rows.check()
    body = b"".join(chunks)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    metrics = get_metrics(request)
    arguments = (body, content_type, schema, runtime, metrics, route, threshold, explain, top)
    return await decode_batch(request.scope, *arguments, rows.brackets if rows else None)


def _batch_reader(schema: BatchSchema) -> Callable[..., Awaitable[Batch]]:
    async def read(
        request: Request,
        runtime: RuntimeDep,
        threshold: IgnoredThreshold = None,
        explain: IgnoredExplain = False,
        top: IgnoredTop = None,
    ) -> Batch:
        return await _read(request, schema, runtime, threshold, explain, top)

    return read


async def _score_batch(
    request: Request,
    runtime: RuntimeDep,
    threshold: ThresholdQuery = None,
    explain: ExplainQuery = False,
    top: TopQuery = None,
) -> Batch:
    return await _read(request, ScoreRequest, runtime, threshold, explain, top)


EncodeBatchDep = Annotated[Batch, Depends(_batch_reader(EncodeRequest))]
DecodeBatchDep = Annotated[Batch, Depends(_batch_reader(DecodeRequest))]
ReconstructBatchDep = Annotated[Batch, Depends(_batch_reader(ReconstructRequest))]
ScoreBatchDep = Annotated[Batch, Depends(_score_batch)]


def get_jobs(request: Request) -> JobBackend:
    jobs: JobBackend = request.app.state.jobs
    return jobs


def get_datasets(request: Request) -> DatasetStore:
    datasets: DatasetStore = request.app.state.datasets
    return datasets


JobsDep = Annotated[JobBackend, Depends(get_jobs)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
