"""Writing a trained model as the files of a version, checked against PyTorch before it ships.

Scaling is baked into the ONNX graphs so the server feeds raw rows and gets raw units back; the
math is the one in docs/artifacts.md. Every graph is run with onnxruntime on the held-out rows and
must match PyTorch, or nothing is written that could be published.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from models.autoencoder import Autoencoder
from models.manifest import (
    GRAPHS,
    OPSET,
    TORCHSCRIPT,
    build_manifest,
    write_calibration,
    write_manifest,
)
from models.scaling import Scaling
from models.training import TrainResult

RTOL = 1e-4
ATOL = 1e-5


class ParityError(RuntimeError):
    """An exported graph disagrees with the PyTorch model it came from."""


class InputScaling(nn.Module):
    """Raw rows x [n, d] → scaled rows s [n, d]."""

    offset: torch.Tensor  # [d]
    scale: torch.Tensor  # [d]

    def __init__(self, scaling: Scaling) -> None:
        super().__init__()
        self.register_buffer("offset", torch.from_numpy(scaling.offset.copy()))
        self.register_buffer("scale", torch.from_numpy(scaling.scale.copy()))
        self.clip = scaling.clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x - self.offset) / self.scale
        return torch.clamp(s, 0.0, 1.0) if self.clip else s

    def invert(self, s: torch.Tensor) -> torch.Tensor:
        return s * self.scale + self.offset


class ScoringGraph(nn.Module):
    """autoencoder.onnx: x [n, d] → codes [n, k], reconstructions [n, d], scores [n],
    feature_errors [n, d]."""

    def __init__(self, model: Autoencoder, scaling: Scaling, loss: str) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)
        self.bce = loss == "bce"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = self.scaling(x)
        codes = self.model.encode(s)
        logits = self.model.decode_logits(codes)
        s_hat = self.model.output(logits)
        if self.bce:
            # -(s log σ(l) + (1 - s) log(1 - σ(l))) rewritten so exp never overflows.
            errors = torch.clamp(logits, min=0) - logits * s + torch.log1p(torch.exp(-logits.abs()))
        else:
            errors = (s - s_hat) ** 2
        return codes, self.scaling.invert(s_hat), errors.mean(dim=1), errors


class EncoderGraph(nn.Module):
    """encoder.onnx: x [n, d] → codes [n, k]."""

    def __init__(self, model: Autoencoder, scaling: Scaling) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(self.scaling(x))


class DecoderGraph(nn.Module):
    """decoder.onnx: codes [n, k] → reconstructions [n, d] in raw units."""

    def __init__(self, model: Autoencoder, scaling: Scaling) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.scaling.invert(self.model.decode(codes))


def export_model(result: TrainResult, directory: Path) -> dict[str, Any]:
    """Write every file of a version into `directory`; return the manifest written there."""
    model, scaling = result.model.cpu().eval(), result.scaling
    graphs: dict[str, nn.Module] = {
        "autoencoder": ScoringGraph(model, scaling, result.config.loss),
        "encoder": EncoderGraph(model, scaling),
        "decoder": DecoderGraph(model, scaling),
    }
    inputs = graph_inputs(result)
    for key, module in graphs.items():
        graph = GRAPHS[key]
        export_onnx(
            module, inputs[key], directory / graph["file"], graph["inputs"], graph["outputs"]
        )
    save_torchscript(model, directory / TORCHSCRIPT)

    max_abs_diff = max(
        check_parity(graphs, inputs, directory),
        check_torchscript(model, scaling.apply(result.validation_rows), directory / TORCHSCRIPT),
    )
    scores = run_onnx(directory / GRAPHS["autoencoder"]["file"], inputs["autoencoder"])["scores"]
    calibration = write_calibration(scores, directory)
    parity = {
        "max_abs_diff": max_abs_diff,
        "rows": len(result.validation_rows),
        "rtol": RTOL,
        "atol": ATOL,
    }
    manifest = build_manifest(result, calibration, parity)
    write_manifest(manifest, directory)
    return manifest


def graph_inputs(result: TrainResult) -> dict[str, np.ndarray]:
    """The held-out rows for the graphs that take x, and their codes for the decoder."""
    rows = result.validation_rows
    with torch.no_grad():
        codes = EncoderGraph(result.model, result.scaling)(torch.from_numpy(rows)).numpy()
    return {"autoencoder": rows, "encoder": rows, "decoder": codes}


def export_onnx(
    module: nn.Module, example: np.ndarray, path: Path, inputs: list[str], outputs: list[str]
) -> None:
    # Every input and output has the batch as its first axis, and only that axis varies.
    dynamic_axes = {name: {0: "n"} for name in [*inputs, *outputs]}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but exports these MLPs fast and exactly.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.from_numpy(example[:2]),),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
        )


def save_torchscript(model: Autoencoder, path: Path) -> None:
    with warnings.catch_warnings():
        # TorchScript is deprecated, yet PyTorch users can load it without our code.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))


def run_onnx(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a check on a few rows; leave the cores to training
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {input_name: x}), strict=True))


def check_parity(
    graphs: dict[str, nn.Module], inputs: dict[str, np.ndarray], directory: Path
) -> float:
    """Compare each ONNX graph with its PyTorch module; the largest absolute difference seen."""
    max_abs_diff = 0.0
    for key, module in graphs.items():
        with torch.no_grad():
            expected = module(torch.from_numpy(inputs[key]))
        expected_arrays = expected if isinstance(expected, tuple) else (expected,)
        actual = run_onnx(directory / GRAPHS[key]["file"], inputs[key])
        for name, want in zip(GRAPHS[key]["outputs"], expected_arrays, strict=True):
            max_abs_diff = max(max_abs_diff, _compare(f"{key}.onnx {name}", actual[name], want))

    return max_abs_diff


def check_torchscript(model: Autoencoder, scaled: np.ndarray, path: Path) -> float:
    """The saved TorchScript must reproduce the model on scaled rows [n, d]."""
    scripted = _load_torchscript(path)
    s = torch.from_numpy(scaled)
    with torch.no_grad():
        return _compare(path.name, scripted(s), model(s))


def _compare(what: str, actual: Any, expected: torch.Tensor) -> float:
    actual_array = actual.numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected_array = expected.numpy()
    try:
        np.testing.assert_allclose(actual_array, expected_array, rtol=RTOL, atol=ATOL)
    except AssertionError as exc:
        raise ParityError(
            f"{what} differs from PyTorch beyond rtol={RTOL}, atol={ATOL}:{exc}"
        ) from None
    if actual_array.size == 0:
        return 0.0
    return float(np.max(np.abs(actual_array.astype(np.float64) - expected_array)))


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: torch.jit.ScriptModule = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    return module
