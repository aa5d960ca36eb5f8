"""Loading a verified version folder into a `ModelRuntime`: its manifest, its calibration scores
and one onnxruntime session per graph, each checked against the artifact contract."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from core.errors import CorruptVersion
from core.manifest import GRAPH_IO, GRAPHS
from service.inference.options import RuntimeOptions
from service.inference.runtime import ModelRuntime
from service.inference.validation import FloatArray


def load_runtime(folder: Path, options: RuntimeOptions) -> ModelRuntime:
    """Load a version folder that the repository has verified; `CorruptVersion` if unusable."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    label = f"model {manifest['name']!r} v{manifest['version']}"
    calibration = _read_calibration(folder, manifest, label)
    session_options = options.session_options()
    sessions = {}
    for graph in GRAPHS:
        spec = manifest["graphs"].get(graph)
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise CorruptVersion(f"{label}: the manifest does not describe the {graph} graph")
        path = folder / spec["file"]
        try:
            session = ort.InferenceSession(
                str(path), sess_options=session_options, providers=list(options.providers)
            )
        except Exception as exc:  # onnxruntime's errors share no base class below Exception
            raise CorruptVersion(f"{label}: {spec['file']} cannot be loaded: {exc}") from exc
        _check_session(session, graph, spec, manifest, label)
        sessions[graph] = session
    return ModelRuntime(folder, manifest, sessions, calibration, options)


def _read_manifest(folder: Path) -> dict[str, Any]:
    where = f"version folder {str(folder)!r}"
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CorruptVersion(f"{where}: manifest.json cannot be read: {exc}") from exc
    expected: dict[str, type | tuple[type, ...]] = {
        "name": str,
        "version": int,
        "input_dim": int,
        "latent_dim": int,
        "loss": str,
        "threshold": (int, float),
        "graphs": dict,
    }
    for key, kind in expected.items():
        if not isinstance(manifest, dict) or not isinstance(manifest.get(key), kind):
            raise CorruptVersion(f"{where}: manifest.json lacks a valid {key!r}")
    if manifest["loss"] not in ("mse", "bce"):
        raise CorruptVersion(f"{where}: unknown loss {manifest['loss']!r}")
    if not math.isfinite(manifest["threshold"]):
        raise CorruptVersion(f"{where}: the threshold is not a finite number")
    result: dict[str, Any] = manifest
    return result


def _read_calibration(folder: Path, manifest: dict[str, Any], label: str) -> FloatArray:
    summary = manifest.get("calibration")
    file_name = summary.get("file", "calibration.npy") if isinstance(summary, dict) else None
    if not isinstance(file_name, str):
        raise CorruptVersion(f"{label}: the manifest does not name a calibration file")
    try:
        scores = np.load(folder / file_name, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorruptVersion(f"{label}: {file_name} cannot be read: {exc}") from exc
    if scores.ndim != 1 or scores.dtype.kind != "f" or not np.isfinite(scores).all():
        raise CorruptVersion(f"{label}: {file_name} must hold a 1-D array of finite scores")
    # Sorted once here so every p-value is a binary search.
    calibration: FloatArray = np.sort(scores.astype(np.float32))
    return calibration


def _check_session(
    session: ort.InferenceSession,
    graph: str,
    spec: dict[str, Any],
    manifest: dict[str, Any],
    label: str,
) -> None:
    """The graph's tensors must be the manifest's, the format's, and of the manifest's widths."""
    file_name = spec["file"]
    inputs = {t.name: t for t in session.get_inputs()}
    outputs = {t.name: t for t in session.get_outputs()}
    for kind, found in (("inputs", inputs), ("outputs", outputs)):
        listed = spec.get(kind)
        if not isinstance(listed, list) or set(listed) != set(found):
            raise CorruptVersion(
                f"{label}: {file_name} has {kind} {sorted(found)}; the manifest lists {listed}"
            )
    required_inputs, required_outputs = GRAPH_IO[graph]
    if sorted(inputs) != sorted(required_inputs):
        raise CorruptVersion(
            f"{label}: {file_name} must take exactly {list(required_inputs)}; "
            f"it takes {sorted(inputs)}"
        )
    for name in required_outputs:
        if name not in outputs:
            raise CorruptVersion(f"{label}: {file_name} lacks output {name!r}")
    widths = {
        "x": ("input_dim", manifest["input_dim"]),
        "codes": ("latent_dim", manifest["latent_dim"]),
        "reconstructions": ("input_dim", manifest["input_dim"]),
        "feature_errors": ("input_dim", manifest["input_dim"]),
    }
    for tensor in (*inputs.values(), *outputs.values()):
        if tensor.type != "tensor(float)":
            raise CorruptVersion(f"{label}: {file_name}: {tensor.name!r} is {tensor.type}")
        shape = tensor.shape
        if tensor.name not in widths or not isinstance(shape, list) or len(shape) != 2:
            continue
        field, width = widths[tensor.name]
        # Only a fixed width can contradict the manifest; the batch dimension is dynamic.
        if isinstance(shape[1], int) and shape[1] != width:
            raise CorruptVersion(
                f"{label}: {file_name} has {tensor.name!r} with {shape[1]} columns; "
                f"the manifest's {field} is {width}"
            )
