"""The protocol's JSON objects, named as in the Open Inference Protocol's REST specification.

Requests refuse unknown top-level fields but take any key in a `parameters` object: clients put
their own keys there (`sequence_id`, `priority`, `timeout`, custom ones) and the protocol says a
server ignores what it does not understand.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt


class ServerMetadata(BaseModel):
    name: str = Field(examples=["aeserve"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data"]])


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str = Field(examples=["digits"])
    version: str = Field(description="The version that would answer.", examples=["1"])
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="-1 marks the batch dimension.", examples=[[-1, 21]])


class ModelMetadata(BaseModel):
    name: str = Field(examples=["digits"])
    versions: list[str] = Field(examples=[["1", "2"]])
    platform: str = Field(examples=["onnxruntime_onnx"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ErrorResponse(BaseModel):
    error: str = Field(examples=["model 'digits' has no input 'y'; it takes 'x'"])


# -- inference requests ---------------------------------------------------------------------------


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="allow")


class RequestParameters(_Parameters):
    binary_data_output: StrictBool = Field(
        default=False, description="Answer every output not asked for otherwise as binary data."
    )


INT64_MAX = 2**63 - 1
"""Where the JSON schema bounds the protocol's integers: larger ones are read as floats, and
refused."""


class InputParameters(_Parameters):
    binary_data_size: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Bytes of this input in the binary section of the body.",
        json_schema_extra={"maximum": INT64_MAX},
    )


class OutputParameters(_Parameters):
    binary_data: StrictBool | None = Field(
        default=None, description="Answer this output as binary data (default: the request's)."
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestInput(_Request):
    name: str
    shape: list[Annotated[StrictInt, Field(json_schema_extra={"minimum": 0, "maximum": INT64_MAX})]]
    datatype: str
    parameters: InputParameters = Field(default_factory=InputParameters)
    data: list[Any] | None = Field(
        default=None, description="Values, flat or nested, row-major; absent for binary data."
    )


class RequestOutput(_Request):
    name: str
    parameters: OutputParameters = Field(default_factory=OutputParameters)


class InferenceRequest(_Request):
    id: str | None = None
    parameters: RequestParameters = Field(default_factory=RequestParameters)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(
        default=None, description="Outputs to answer; every output of the model when absent."
    )


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: Any = Field(default=None, description="Flat, row-major; absent for binary data.")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


# -- model configuration, in the shape Triton's /config has and perf_analyzer reads ---------------


class ConfigTensor(BaseModel):
    name: str
    data_type: str = Field(examples=["TYPE_FP32"])
    dims: list[int] = Field(description="Without the batch dimension.")
    reshape: dict[str, list[int]] | None = Field(
        default=None, description="`{'shape': []}` for one value per row."
    )


class DynamicBatching(BaseModel):
    preferred_batch_size: list[int] = Field(
        description="The merged batch the batcher fills before it runs (`max_batch_rows`).",
        examples=[[256]],
    )
    max_queue_delay_microseconds: int = Field(
        description="How long a request may wait for others to fill the batch.", examples=[0]
    )


class ModelConfig(BaseModel):
    name: str
    platform: str
    backend: str
    max_batch_size: int = Field(description="Most rows one request may carry (`max_batch`).")
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    dynamic_batching: DynamicBatching | None = Field(
        default=None, description="Present when concurrent requests are merged into one run."
    )
