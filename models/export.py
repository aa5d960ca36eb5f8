"""Writing a trained model as the files of a version, checked against PyTorch before it ships.

Every graph is run with onnxruntime on the held-out rows and must match its PyTorch module, or
the export fails before a manifest exists, so nothing half-checked can be published.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from core.manifest import ExportedManifest, ParityCheck, default_graphs, write_manifest
from models.autoencoder import Autoencoder
from models.graphs import DecoderGraph, EncoderGraph, ScoringGraph
from models.manifest import OPSET, TORCHSCRIPT, build_manifest, write_calibration
from models.parity import ATOL, RTOL, compare, compare_outputs
from models.scaling import Scaling
from models.scoring import LatentStats
from models.training import TrainResult

GRAPHS = default_graphs()


def export_model(
    result: TrainResult, directory: Path, *, feature_names: list[str] | None = None
) -> ExportedManifest:
    """Write every file of a version into `directory`; return the manifest written there."""
    model, scaling = result.model.cpu().eval(), result.scaling
    graphs: dict[str, nn.Module] = {
        "autoencoder": ScoringGraph(model, scaling, result.config.loss, result.latent),
        "encoder": EncoderGraph(model, scaling),
        "decoder": DecoderGraph(model, scaling),
    }
    inputs = graph_inputs(result)
    for key, module in graphs.items():
        graph = GRAPHS[key]
        export_onnx(module, inputs[key], directory / graph.file, graph.inputs, graph.outputs)
    save_torchscript(model, directory / TORCHSCRIPT)

    max_abs_diff = max(
        check_parity(graphs, inputs, directory, scaling, result.config.loss, result.latent),
        check_torchscript(model, scaling.apply(result.validation_rows), directory / TORCHSCRIPT),
    )
    scores = run_onnx(directory / GRAPHS["autoencoder"].file, inputs["autoencoder"])["scores"]
    calibration = write_calibration(scores, directory)
    parity = ParityCheck(
        max_abs_diff=max_abs_diff, rows=len(result.validation_rows), rtol=RTOL, atol=ATOL
    )
    manifest = build_manifest(result, calibration, parity, feature_names)
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
    graphs: dict[str, nn.Module],
    inputs: dict[str, np.ndarray],
    directory: Path,
    scaling: Scaling,
    loss: str,
    latent: LatentStats | None = None,
) -> float:
    """Compare each ONNX graph with its PyTorch module (models/parity.py); the largest
    difference seen."""
    worst = 0.0
    for key, module in graphs.items():
        with torch.no_grad():
            expected = module(torch.from_numpy(inputs[key]))
        expected_arrays = expected if isinstance(expected, tuple) else (expected,)
        wanted = {
            name: tensor.numpy()
            for name, tensor in zip(GRAPHS[key].outputs, expected_arrays, strict=True)
        }
        actual = run_onnx(directory / GRAPHS[key].file, inputs[key])
        score = latent if key == "autoencoder" else None
        worst = max(worst, compare_outputs(key, actual, wanted, inputs[key], scaling, loss, score))
    return worst


def check_torchscript(model: Autoencoder, scaled: np.ndarray, path: Path) -> float:
    """The saved TorchScript must reproduce the model on scaled rows [n, d]."""
    scripted = _load_torchscript(path)
    s = torch.from_numpy(scaled)
    with torch.no_grad():
        return compare(path.name, scripted(s).numpy(), model(s).numpy())


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: torch.jit.ScriptModule = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    return module
