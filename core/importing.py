"""Importing an autoencoder trained elsewhere: its options and the rules its graph must keep.

The rules read a graph's signature (tensor names, element types, shapes) and say which tensor is
the input, the reconstruction and the codes, or refuse the graph with `InvalidInput` naming why.
The API process reads the signature with onnxruntime at submit time; the import job reads it again
from the graph it wraps (a TorchScript module is only an ONNX graph once the job converted it).
Neither torch nor onnx here: both processes import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.config import Loss
from core.errors import InvalidInput

ImportScaling = Literal["none", "standard", "minmax"]
ModelFormat = Literal["onnx", "torchscript"]

MIN_OPSET = 13
"""The wrapper's own operators take their axes as inputs from here on; older graphs are
converted to it first (and refused if they cannot be)."""

CASTABLE = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16"}
"""Element types the wrapper casts to and from float32; any other is refused."""


class ImportOptions(BaseModel):
    """How to read and score an imported graph; every field optional."""

    model_config = ConfigDict(extra="forbid")

    scaling: ImportScaling = Field(
        default="none",
        description="Scaling put in front of the graph, fitted on the calibration rows: none "
        "when the graph takes raw rows (the usual case: it was trained on them).",
    )
    loss: Loss = Field(
        default="mse",
        description="The per-feature loss of the score. bce needs rows and reconstructions in "
        "[0, 1] (a graph ending in a sigmoid).",
    )
    codes: str | None = Field(
        default=None,
        description="The graph's output holding the codes, if it has one: /encode serves it, "
        "and /decode too when the reconstruction depends on the input through it only.",
    )
    reconstructions: str | None = Field(
        default=None,
        description="The graph's output holding the reconstruction; needed only when the graph "
        "has several outputs besides the codes.",
    )
    threshold_quantile: float = Field(
        default=0.99, gt=0, lt=1, description="Quantile of the calibration scores: the threshold."
    )


Dim = int | str | None
"""One axis of a tensor's shape: a fixed size, a symbolic name, or unknown."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str
    """onnxruntime's spelling: `tensor(float)`."""
    shape: tuple[Dim, ...] | None
    """None when the graph declares no shape at all."""


def tensors_of(args: Sequence[Any]) -> list[TensorInfo]:
    """onnxruntime's `NodeArg`s (a session's get_inputs(), get_outputs()) as the rules read them."""
    return [
        TensorInfo(arg.name, arg.type, tuple(arg.shape) if arg.shape is not None else None)
        for arg in args
    ]


@dataclass(frozen=True)
class ImportPlan:
    """Which tensors of the graph are which, as the rules read them."""

    input: str
    reconstructions: str
    codes: str | None
    input_dim: int | None
    """Fixed by the graph, or None: then the calibration rows' width."""
    latent_dim: int | None
    fixed_batch: bool
    """The graph takes exactly one row: the wrapper loops over the rows of a batch."""


def plan_import(
    inputs: list[TensorInfo], outputs: list[TensorInfo], options: ImportOptions, width: int | None
) -> ImportPlan:
    """Read the graph's signature as an autoencoder of rows `width` wide (None: not known yet)."""
    if len(inputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs) or "none"
        raise InvalidInput(
            f"model: the graph takes {len(inputs)} inputs ({names}); an autoencoder takes one "
            "[n, d] tensor"
        )
    (x,) = inputs
    _check_type(x, "input")
    input_dim = _feature_dim(x, "input")
    fixed_batch = _batch(x)
    if input_dim is not None and width is not None and input_dim != width:
        raise InvalidInput(
            f"model: input {x.name!r} takes rows of {input_dim} values; the calibration rows "
            f"have {width}"
        )
    dim = input_dim if input_dim is not None else width
    by_name = {t.name: t for t in outputs}
    for flag, name in (("codes", options.codes), ("reconstructions", options.reconstructions)):
        if name is not None and name not in by_name:
            raise InvalidInput(
                f"{flag}: the graph has no output {name!r}; its outputs are {_names(outputs)}"
            )
    if options.codes is not None and options.codes == options.reconstructions:
        raise InvalidInput(f"codes: {options.codes!r} is the reconstruction too")
    reconstruction = by_name[_reconstruction_name(outputs, options)]
    _check_type(reconstruction, "output")
    recon_dim = _feature_dim(reconstruction, "output")
    if recon_dim is not None and dim is not None and recon_dim != dim:
        raise InvalidInput(
            f"model: output {reconstruction.name!r} has {recon_dim} values a row, its input "
            f"{dim}: an autoencoder's reconstruction is as wide as its input"
        )
    latent_dim = None
    if options.codes is not None:
        codes = by_name[options.codes]
        _check_type(codes, "output")
        latent_dim = _feature_dim(codes, "output")
    return ImportPlan(
        input=x.name,
        reconstructions=reconstruction.name,
        codes=options.codes,
        input_dim=dim,
        latent_dim=latent_dim,
        fixed_batch=fixed_batch,
    )


def _names(tensors: list[TensorInfo]) -> str:
    return ", ".join(repr(t.name) for t in tensors) or "none"


def _reconstruction_name(outputs: list[TensorInfo], options: ImportOptions) -> str:
    if options.reconstructions is not None:
        return options.reconstructions
    candidates = [t.name for t in outputs if t.name != options.codes]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InvalidInput("model: the graph has no output besides the codes to reconstruct with")
    raise InvalidInput(
        f"model: the graph has outputs {_names(outputs)}; name the reconstruction "
        "(--reconstructions, or `reconstructions` over HTTP) and the codes if one holds them"
    )


def _check_type(tensor: TensorInfo, kind: str) -> None:
    if tensor.type not in CASTABLE:
        raise InvalidInput(
            f"model: {kind} {tensor.name!r} is {tensor.type}; aeserve feeds and reads float32 "
            "(float64 and float16 are cast)"
        )


def _feature_dim(tensor: TensorInfo, kind: str) -> int | None:
    """The width of a [n, d] tensor: its second axis, when fixed."""
    shape = tensor.shape
    if shape is None:
        return None
    if len(shape) != 2:
        raise InvalidInput(
            f"model: {kind} {tensor.name!r} has shape {_shape(shape)}; an autoencoder's tensors "
            "are [n, d]: a batch of rows"
        )
    width = shape[1]
    if isinstance(width, int) and width < 1:
        raise InvalidInput(f"model: {kind} {tensor.name!r} has shape {_shape(shape)}")
    return width if isinstance(width, int) else None


def _batch(tensor: TensorInfo) -> bool:
    """Whether the first axis is fixed to one row; refused when fixed to more."""
    if tensor.shape is None:
        return False
    batch = tensor.shape[0]
    if not isinstance(batch, int) or batch < 1:  # symbolic, unknown, or -1: dynamic
        return False
    if batch != 1:
        raise InvalidInput(
            f"model: input {tensor.name!r} has shape {_shape(tensor.shape)}: its batch axis is "
            f"fixed to {batch} rows; export it with a dynamic first axis (torch.onnx.export's "
            "dynamic_axes or dynamic_shapes), or fixed to 1"
        )
    return True


def _shape(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
