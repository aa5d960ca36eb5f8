"""The protocol routes' dependencies: the model a path names and the decoded inference request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from service.http.deps import RegistryDep, SettingsDep, get_metrics
from service.v2 import tensors, wire
from service.v2.model_metadata import ProtocolModel, resolve
from service.v2.schemas import InferenceRequest


async def get_model(
    request: Request, registry: RegistryDep, name: str, version: str | None = None
) -> ProtocolModel:
    # A coroutine, like service/http/deps.py's: a plain function would cost a threadpool hop.
    model = await resolve(registry, name, version)
    # Read by the metrics middleware to label the request.
    request.state.model_name = model.runtime.name
    request.state.model_version = model.runtime.version
    return model


ModelDep = Annotated[ProtocolModel, Depends(get_model)]


async def read_inference(
    request: Request, model: ModelDep, settings: SettingsDep
) -> tensors.Inference:
    """The body, split into its JSON header and binary section, decoded against the model."""
    body = wire.decompress(
        await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
    )
    header, binary = wire.split(body, request.headers.get(wire.HEADER))
    if header is None:
        inference = tensors.decode_raw(model, binary)
    else:
        try:
            parsed = InferenceRequest.model_validate(wire.parse_json(header))
        except ValidationError as exc:
            # Rendered by the one error handler, which answers 400 on /v2.
            raise RequestValidationError(exc.errors()) from None
        inference = tensors.decode(model, parsed, binary)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    rows = next(iter(inference.arrays.values())).shape[0]
    get_metrics(request).observe_batch(route, model.runtime.name, rows)
    return inference


InferenceDep = Annotated[tensors.Inference, Depends(read_inference)]
