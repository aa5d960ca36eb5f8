"""Protocol model names onto runtimes: `{name}` is the autoencoder graph, `{name}.decoder` is g.

The protocol has one model per set of tensors, so the decoder, which takes codes rather than rows,
is a model of its own. A repository model whose own name ends in `.decoder` is therefore reached
over the protocol only through its decoder; the rest of the API still names it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import __version__
from core.errors import InvalidInput, ModelNotFound, VersionNotFound
from core.manifest import GRAPH_IO
from core.repository import Repository
from service.inference.options import RuntimeOptions
from service.inference.registry import ModelRegistry
from service.inference.runtime import ModelRuntime
from service.v2.schemas import (
    ConfigTensor,
    DynamicBatching,
    ModelConfig,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
)

DECODER_SUFFIX = ".decoder"
DATATYPE = "FP32"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "parameters"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    """-1 marks the batch dimension."""


@dataclass(frozen=True)
class ProtocolModel:
    """One runtime graph under the name a client calls it by."""

    name: str
    base: str
    """The repository model's name."""
    graph: str
    runtime: ModelRuntime
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def label(self) -> str:
        return f"model {self.name!r} v{self.runtime.version}"

    def input(self, name: str) -> TensorSpec:
        return self._find(self.inputs, name, "input", "takes")

    def output(self, name: str) -> TensorSpec:
        return self._find(self.outputs, name, "output", "gives")

    def _find(self, specs: tuple[TensorSpec, ...], name: str, kind: str, verb: str) -> TensorSpec:
        for spec in specs:
            if spec.name == name:
                return spec
        known = ", ".join(repr(spec.name) for spec in specs)
        raise InvalidInput(f"model {self.name!r} has no {kind} {name!r}; it {verb} {known}")


def _spec(name: str, runtime: ModelRuntime) -> TensorSpec:
    if name == "scores":  # one loss per row
        return TensorSpec(name, (-1,))
    width = runtime.latent_dim if name == "codes" else runtime.input_dim
    return TensorSpec(name, (-1, -1 if width is None else width))


def _version_number(name: str, version: str | None) -> int | None:
    if version is None:
        return None
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise VersionNotFound(
            f"model {name!r} has no version {version!r}; versions are whole numbers from 1"
        )
    return int(version)


async def resolve(registry: ModelRegistry, name: str, version: str | None) -> ProtocolModel:
    """The model a path names; 404 for an unknown name or version, 503 while it loads.

    An active version answers at once; any other (which may read or load from disk) is looked up
    in a worker thread, so the event loop never waits on the disk.
    """
    base, graph = name, "autoencoder"
    if name.endswith(DECODER_SUFFIX):
        base, graph = name.removesuffix(DECODER_SUFFIX), "decoder"
    number = _version_number(name, version)
    try:
        runtime = await registry.get_async(base, number)
    except ModelNotFound:
        # The registry names the repository model; the client asked for the protocol's name.
        raise ModelNotFound(f"model {name!r} not found") from None
    except VersionNotFound:
        raise VersionNotFound(f"model {name!r} has no version {number}") from None
    # An imported version may lack the decoder (409) or the `codes` output.
    inputs, outputs = GRAPH_IO[graph][0], runtime.outputs_of(graph)
    return ProtocolModel(
        name=name,
        base=base,
        graph=graph,
        runtime=runtime,
        inputs=tuple(_spec(tensor, runtime) for tensor in inputs),
        outputs=tuple(_spec(tensor, runtime) for tensor in outputs),
    )


def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="aeserve", version=__version__, extensions=EXTENSIONS)


def _tensor_metadata(specs: tuple[TensorSpec, ...]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=DATATYPE, shape=list(s.shape)) for s in specs]


def metadata(model: ProtocolModel, repository: Repository) -> ModelMetadata:
    return ModelMetadata(
        name=model.name,
        versions=[str(v) for v in repository.versions(model.base)],
        platform=PLATFORM,
        inputs=_tensor_metadata(model.inputs),
        outputs=_tensor_metadata(model.outputs),
    )


def _config_tensors(specs: tuple[TensorSpec, ...]) -> list[ConfigTensor]:
    tensors = []
    for spec in specs:
        dims = list(spec.shape[1:])  # with max_batch_size > 0, Triton leaves the batch out
        # One value per row is Triton's `dims: [1]` reshaped to a scalar.
        reshape: dict[str, list[int]] | None = None if dims else {"shape": []}
        tensors.append(
            ConfigTensor(
                name=spec.name, data_type=f"TYPE_{DATATYPE}", dims=dims or [1], reshape=reshape
            )
        )
    return tensors


def _dynamic_batching(options: RuntimeOptions) -> DynamicBatching | None:
    """Triton's `dynamic_batching`, from the options the version's batcher runs with.

    The batcher fills a merged batch up to `max_batch_rows` rows (waiting at most the queue delay
    for them), which is what Triton's one preferred batch size means. Triton refuses a preferred
    size above `max_batch_size`, so it is capped at `max_batch`.
    """
    if not options.dynamic_batching:
        return None
    return DynamicBatching(
        preferred_batch_size=[min(options.max_batch_rows, options.max_batch)],
        max_queue_delay_microseconds=options.max_queue_delay_us,
    )


def config(model: ProtocolModel) -> ModelConfig:
    options = model.runtime.options
    return ModelConfig(
        name=model.name,
        platform=PLATFORM,
        backend="onnxruntime",
        max_batch_size=options.max_batch,
        input=_config_tensors(model.inputs),
        output=_config_tensors(model.outputs),
        dynamic_batching=_dynamic_batching(options),
    )
