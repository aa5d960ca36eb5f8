"""Dependencies, as `Annotated` aliases, so a route's signature reads like a sentence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Header, Query, Request

from service.auth import check_key
from service.errors import NotReady
from service.metrics import Metrics
from service.payloads import ScoreOptions, read_batch, score_options
from service.registry import ModelRegistry
from service.repository import ModelRepository
from service.runtime import ModelRuntime
from service.schemas import DecodeRequest, EncodeRequest, ReconstructRequest, ScoreRequest
from service.settings import Settings


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


def get_repository(request: Request) -> ModelRepository:
    repository: ModelRepository = request.app.state.repository
    return repository


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
AcceptDep = Annotated[str | None, Header(include_in_schema=False)]


def require_key(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    check_key(settings, authorization)


def require_key_for_inference(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    if settings.inference_requires_key:
        check_key(settings, authorization)


AdminKey = Depends(require_key)
InferenceKey = Depends(require_key_for_inference)


def get_runtime(
    request: Request,
    registry: RegistryDep,
    model: Annotated[str | None, Query(description="Model name; default model if omitted.")] = None,
    version: Annotated[
        int | None, Query(ge=1, description="Model version; the active one if omitted.")
    ] = None,
) -> ModelRuntime:
    runtime = registry.get(model, version)
    # Read by the metrics middleware to label the request.
    request.state.model_name = runtime.name
    request.state.model_version = runtime.version
    return runtime


RuntimeDep = Annotated[ModelRuntime, Depends(get_runtime)]


@dataclass(frozen=True)
class Batch:
    """The request's matrix and, for /score, its options."""

    array: np.ndarray
    options: ScoreOptions


BatchSchema = type[EncodeRequest | ReconstructRequest | ScoreRequest | DecodeRequest]


def _batch_reader(schema: BatchSchema) -> Callable[..., Awaitable[Batch]]:
    async def read(
        request: Request,
        runtime: RuntimeDep,
        threshold: Annotated[
            float | None, Query(include_in_schema=False, allow_inf_nan=False)
        ] = None,
        explain: Annotated[bool, Query(include_in_schema=False)] = False,
    ) -> Batch:
        body = await request.body()
        dim = runtime.latent_dim if schema is DecodeRequest else runtime.input_dim
        label = f"model {runtime.name!r} v{runtime.version}"
        array, parsed = read_batch(
            body, request.headers.get("content-type", ""), schema, dim, label
        )
        route = getattr(request.scope.get("route"), "path", request.url.path)
        get_metrics(request).observe_batch(route, runtime.name, len(array))
        return Batch(array, score_options(parsed, threshold, explain))

    return read


EncodeBatchDep = Annotated[Batch, Depends(_batch_reader(EncodeRequest))]
DecodeBatchDep = Annotated[Batch, Depends(_batch_reader(DecodeRequest))]
ReconstructBatchDep = Annotated[Batch, Depends(_batch_reader(ReconstructRequest))]
ScoreBatchDep = Annotated[Batch, Depends(_batch_reader(ScoreRequest))]
