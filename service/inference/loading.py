"""Loading a verified version folder into a `ModelRuntime`: its manifest, its calibration scores
and one onnxruntime session per graph, each checked against the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.errors import CorruptVersion
from core.manifest import GRAPHS, GraphSpec, Manifest, read_manifest
from service.inference.options import RuntimeOptions
from service.inference.runtime import ModelRuntime
from service.inference.validation import FloatArray


def load_runtime(folder: Path, options: RuntimeOptions) -> ModelRuntime:
    """Load a version folder that the repository has verified; `CorruptVersion` if unusable."""
    folder = Path(folder)
    # The manifest model checks the fields and the graph I/O contract (core/manifest.py).
    manifest = read_manifest(folder)
    label = f"model {manifest.name!r} v{manifest.version}"
    calibration = _read_calibration(folder, manifest, label)
    session_options = options.session_options()
    sessions = {}
    for graph in GRAPHS:
        spec = manifest.graphs.get(graph)
        if spec is None:  # an imported version may lack the encoder and decoder
            continue
        try:
            session = ort.InferenceSession(
                str(folder / spec.file),
                sess_options=session_options,
                providers=list(options.providers),
            )
        except Exception as exc:  # onnxruntime's errors share no base class below Exception
            raise CorruptVersion(f"{label}: {spec.file} cannot be loaded: {exc}") from exc
        _check_session(session, spec, manifest, label)
        sessions[graph] = session
    return ModelRuntime(folder, manifest, sessions, calibration, options)


def _read_calibration(folder: Path, manifest: Manifest, label: str) -> FloatArray:
    file_name = manifest.calibration.file
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
    session: ort.InferenceSession, spec: GraphSpec, manifest: Manifest, label: str
) -> None:
    """The graph's tensors must be the manifest's (which keep GRAPH_IO), of its widths."""
    inputs = {t.name: t for t in session.get_inputs()}
    outputs = {t.name: t for t in session.get_outputs()}
    for kind, listed, found in (
        ("inputs", spec.inputs, inputs),
        ("outputs", spec.outputs, outputs),
    ):
        if set(listed) != set(found):
            raise CorruptVersion(
                f"{label}: {spec.file} has {kind} {sorted(found)}; the manifest lists {listed}"
            )
    widths: dict[str, tuple[str, int | None]] = {
        "x": ("input_dim", manifest.input_dim),
        "codes": ("latent_dim", manifest.latent_dim),
        "reconstructions": ("input_dim", manifest.input_dim),
        "feature_errors": ("input_dim", manifest.input_dim),
    }
    for tensor in (*inputs.values(), *outputs.values()):
        if tensor.type != "tensor(float)":
            raise CorruptVersion(f"{label}: {spec.file}: {tensor.name!r} is {tensor.type}")
        shape = tensor.shape
        if tensor.name not in widths or not isinstance(shape, list) or len(shape) != 2:
            continue
        field, width = widths[tensor.name]
        # Only a fixed width can contradict the manifest; the batch dimension is dynamic.
        if isinstance(shape[1], int) and shape[1] != width:
            raise CorruptVersion(
                f"{label}: {spec.file} has {tensor.name!r} with {shape[1]} columns; "
                f"the manifest's {field} is {width}"
            )
