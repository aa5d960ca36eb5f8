"""Request tensors into arrays for `ModelRuntime.infer`, and its arrays back into tensors.

Datatypes: inputs must be FP32, the models' own type. FP64 or integer tensors are refused with a
400 that says so rather than cast, as Triton does: a silent cast would hide a client sending the
wrong array, and the byte size of binary data depends on the datatype. JSON `data` may be flat or
nested in any rectangular way; it is read row-major, so only its element count must match the
shape (Triton reads it the same way). Finiteness, the batch size and the empty batch are checked
by the runtime, as for every other route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import BadRequest, InvalidInput
from service.v2.model_metadata import DATATYPE, ProtocolModel
from service.v2.schemas import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput

FP32 = np.dtype("<f4")  # the binary extension is little-endian
MAX_BYTES = 2**63 - 1
"""Largest byte size a tensor may declare: anything larger overflows a signed 64-bit count."""
_UNSUPPORTED = {
    "shared_memory_region": "the shared-memory extensions",
    "classification": "the classification extension",
}


@dataclass(frozen=True)
class Inference:
    """A decoded request: the runtime's inputs and, in answer order, each output and its form."""

    arrays: dict[str, np.ndarray[Any, Any]]
    outputs: list[tuple[str, bool]]
    """(name, answered as binary data)."""
    request_id: str | None = None

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.outputs]


def _refuse_extensions(what: str, parameters: dict[str, Any] | None) -> None:
    for key in parameters or {}:
        if key in _UNSUPPORTED:
            raise BadRequest(
                f"{what} sets parameters.{key}, but aeserve does not offer {_UNSUPPORTED[key]}"
            )


def _checked_count(tensor: RequestInput, model: ProtocolModel) -> int:
    """The tensor's element count, once its shape is sane and fits the model's input."""
    label = f"input {tensor.name!r} has shape {tensor.shape}"
    if any(dim < 0 for dim in tensor.shape):
        raise InvalidInput(f"{label}; dimensions cannot be negative")
    count = math.prod(tensor.shape)
    if count * FP32.itemsize > MAX_BYTES:
        raise InvalidInput(
            f"{label}: {count} {DATATYPE} values overflow the largest byte size, 2^63 - 1"
        )
    expected = model.input(tensor.name).shape
    fits = len(tensor.shape) == len(expected) and all(
        want in (-1, dim) for dim, want in zip(tensor.shape, expected, strict=True)
    )
    if not fits:
        raise InvalidInput(f"{label}; {model.label} takes {list(expected)}")
    return count


def _from_json(tensor: RequestInput, count: int) -> np.ndarray[Any, Any]:
    if tensor.data is None:
        raise InvalidInput(
            f"input {tensor.name!r} has neither data nor parameters.binary_data_size"
        )
    rectangular = f"input {tensor.name!r}: data must be numbers, flat or nested in equal rows"
    try:
        values = np.array(tensor.data)
    except (ValueError, TypeError):  # ragged, or nested beyond NumPy's 64 dimensions
        raise InvalidInput(rectangular) from None
    if values.dtype.kind not in "iuf":  # strings, null, booleans, integers beyond 64 bits
        raise InvalidInput(rectangular)
    if values.size != count:
        raise InvalidInput(
            f"input {tensor.name!r} has {values.size} values; shape {tensor.shape} needs {count}"
        )
    return values


def _from_binary(
    tensor: RequestInput, count: int, size: int, binary: memoryview, offset: int
) -> np.ndarray[Any, Any]:
    if tensor.data is not None:
        raise InvalidInput(
            f"input {tensor.name!r} has both data and parameters.binary_data_size; send one"
        )
    if size != count * FP32.itemsize:
        raise InvalidInput(
            f"input {tensor.name!r} has binary_data_size {size}; shape {tensor.shape} of "
            f"{DATATYPE} needs {count * FP32.itemsize} bytes"
        )
    if offset + size > len(binary):
        raise BadRequest(
            f"input {tensor.name!r} needs {size} bytes of binary data but the body has "
            f"{len(binary) - offset} left"
        )
    array = np.frombuffer(binary, dtype=FP32, count=count, offset=offset)
    # The JSON header's length sets where the data starts, so it may be misaligned for floats.
    return array if array.flags.aligned else array.copy()


def _inputs(
    model: ProtocolModel, tensors: list[RequestInput], binary: memoryview
) -> dict[str, np.ndarray[Any, Any]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for tensor in tensors:
        if tensor.name in arrays:
            raise InvalidInput(f"input {tensor.name!r} appears twice; send each input once")
        _refuse_extensions(f"input {tensor.name!r}", tensor.parameters.model_extra)
        model.input(tensor.name)
        if tensor.datatype != DATATYPE:
            raise InvalidInput(
                f"input {tensor.name!r} has datatype {tensor.datatype!r}; {model.label} takes "
                f"{DATATYPE!r} only (send float32 data)"
            )
        count = _checked_count(tensor, model)
        size = tensor.parameters.binary_data_size
        if size is None:
            array = _from_json(tensor, count)
        else:
            array = _from_binary(tensor, count, size, binary, offset)
            offset += size
        arrays[tensor.name] = array.reshape(tensor.shape)
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary) - offset} bytes after the inputs' binary data; "
            "binary_data_size must account for every byte after the JSON header"
        )
    for spec in model.inputs:
        if spec.name not in arrays:
            raise InvalidInput(f"{model.label} needs input {spec.name!r}")
    return arrays


def _outputs(model: ProtocolModel, request: InferenceRequest) -> list[tuple[str, bool]]:
    default = request.parameters.binary_data_output
    if not request.outputs:  # absent or [] : every output, as Triton answers
        return [(spec.name, default) for spec in model.outputs]
    plan: list[tuple[str, bool]] = []
    for output in request.outputs:
        if any(name == output.name for name, _ in plan):
            raise InvalidInput(f"output {output.name!r} is asked for twice; name each output once")
        _refuse_extensions(f"output {output.name!r}", output.parameters.model_extra)
        model.output(output.name)
        binary = output.parameters.binary_data
        plan.append((output.name, default if binary is None else binary))
    return plan


def decode(model: ProtocolModel, request: InferenceRequest, binary: memoryview) -> Inference:
    return Inference(_inputs(model, request.inputs, binary), _outputs(model, request), request.id)


def decode_raw(model: ProtocolModel, body: memoryview) -> Inference:
    """Triton's raw form: the body is the one input's FP32 rows; every output answers binary."""
    (spec,) = model.inputs
    width = spec.shape[1]
    row_bytes = width * FP32.itemsize
    if len(body) % row_bytes:
        raise BadRequest(
            f"a raw binary body (Inference-Header-Content-Length: 0) must hold whole rows of "
            f"{width} {DATATYPE} values ({row_bytes} bytes each); got {len(body)} bytes"
        )
    array = np.frombuffer(body, dtype=FP32).reshape(-1, width)
    return Inference({spec.name: array}, [(s.name, True) for s in model.outputs])


def encode(
    model: ProtocolModel, inference: Inference, results: dict[str, np.ndarray[Any, Any]]
) -> tuple[dict[str, Any], list[bytes]]:
    """The response's JSON header and its binary parts, in output order."""
    outputs: list[ResponseOutput] = []
    buffers: list[bytes] = []
    for name, binary in inference.outputs:
        array = np.ascontiguousarray(results[name], dtype=FP32)
        shape = list(array.shape)
        if binary:
            buffers.append(array.tobytes())
            parameters = {"binary_data_size": array.nbytes}
            outputs.append(
                ResponseOutput(name=name, datatype=DATATYPE, shape=shape, parameters=parameters)
            )
        else:  # flat, row-major, and written by orjson straight from the array
            outputs.append(
                ResponseOutput(name=name, datatype=DATATYPE, shape=shape, data=array.reshape(-1))
            )
    response = InferenceResponse(
        model_name=model.name,
        model_version=str(model.runtime.version),
        id=inference.request_id,
        outputs=outputs,
    )
    return response.model_dump(exclude_none=True), buffers
