"""The protocol routes' dependencies: the model a path names and the decoded inference request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.errors import BadRequest
from service.http import offload
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
    """The body, split into its JSON header and binary section, decoded against the model; on a
    thread when its JSON is large or the body compressed (service/http/offload.py). A binary
    section is viewed, not parsed, so its size does not send the decoding to a thread."""
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    header_value = request.headers.get(wire.HEADER)
    size = _work_size(body, encoding, header_value, settings.inline_body_bytes)
    limit = settings.max_body_bytes
    inference = await offload.decode(
        request.scope, size, _decode, model, body, encoding, header_value, limit
    )
    route = getattr(request.scope.get("route"), "path", request.url.path)
    rows = next(iter(inference.arrays.values())).shape[0]
    get_metrics(request).observe_batch(route, model.runtime.name, rows)
    return inference


def _work_size(body: bytes, encoding: str | None, header_value: str | None, inline: int) -> int:
    """The bytes whose decoding costs in proportion to their size: the JSON, all of a
    compressed body."""
    if encoding is not None:
        return len(body) + inline + 1
    try:
        length = wire.header_length(header_value, len(body))
    except BadRequest:
        return 0  # refused at once by `_decode`, worded there
    return len(body) if length is None else length


def _decode(
    model: ProtocolModel, body: bytes, encoding: str | None, header_value: str | None, limit: int
) -> tensors.Inference:
    body = wire.decompress(body, encoding, limit)
    header, binary = wire.split(body, header_value)
    if header is None:
        return tensors.decode_raw(model, binary)
    wire.check_value_count(body, header.nbytes, _most_values(model))
    try:
        parsed = InferenceRequest.model_validate(wire.parse_json(header))
    except ValidationError as exc:
        # Rendered by the one error handler, which answers 400 on /v2.
        raise RequestValidationError(exc.errors()) from None
    return tensors.decode(model, parsed, binary)


def _most_values(model: ProtocolModel) -> int:
    """Most values one request's JSON may hold: the largest batch of the widest tensor."""
    runtime = model.runtime
    return runtime.options.max_batch * max(runtime.input_dim, runtime.latent_dim or 0)


InferenceDep = Annotated[tensors.Inference, Depends(read_inference)]
