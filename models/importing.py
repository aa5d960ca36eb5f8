"""Import an autoencoder trained elsewhere: wrap its graph, calibrate, check, publish.

What the CLI (`aeserve import`) and the import jobs call. A TorchScript module is converted to
ONNX here, in the training process, never in the API. The user's graph is run on the calibration
rows first: that fixes the widths a symbolic shape left open and the reference every wrapped
graph must match (the parity check) before a manifest exists.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter

import core
from core import rules
from core.errors import InvalidInput
from core.importing import MIN_OPSET, ImportOptions, ModelFormat, plan_import, tensors_of
from core.manifest import (
    FORMAT,
    ExportedManifest,
    ImportSummary,
    ParityCheck,
    ToolVersions,
    default_graphs,
    write_manifest,
)
from core.model_files import sniff_format
from core.repository import Repository, check_name, sha256_of
from models.manifest import calibration_summary, write_calibration
from models.pipeline import PublishedModel
from models.scaling import Scaling, fit_scaling
from models.wrapping import (
    UserGraph,
    autoencoder_graph,
    decoder_graph,
    encoder_graph,
    prefixed,
    separable,
)

RTOL = 1e-4
ATOL = 1e-5
TORCHSCRIPT_INPUT = "x"


class ImportFailed(ValueError):
    """The graph cannot be served as an autoencoder; the message says why."""


@dataclass(frozen=True)
class SourceModel:
    """The user's model as ONNX, and the file it came from."""

    model: onnx.ModelProto
    format: ModelFormat
    file: str
    sha256: str
    bytes: int
    opset: int
    torch_version: str | None = None


def import_and_publish(
    path: Path,
    rows: np.ndarray,
    name: str,
    options: ImportOptions,
    repository: Repository,
    *,
    promote: bool,
    file_name: str | None = None,
) -> PublishedModel:
    """Wrap the model at `path`, calibrate it on normal rows [n, d], publish it as `name`."""
    check_name(name)
    rules.check_min_rows(len(rows))
    if name in repository.names():
        active = repository.active_version(name)
        if active is not None:
            input_dim = repository.manifest(name, active).input_dim
            rules.check_input_dim(rows.shape[1], input_dim, rules.model_label(name, active))
    source = load_source(path, rows, file_name or path.name)
    with repository.staging() as staging:
        wrap_model(source, rows, options, staging)
        version = repository.publish(name, staging, promote=promote)
    return PublishedModel(name, version, repository.manifest(name, version))


def load_source(path: Path, rows: np.ndarray, file_name: str) -> SourceModel:
    """The model file as an ONNX graph of opset ≥ MIN_OPSET; TorchScript converted, and checked
    against itself on the first calibration rows."""
    data = path.read_bytes()
    model_format = sniff_format(data[:8])
    torch_version = None
    if model_format == "torchscript":
        model, torch_version = _torchscript_to_onnx(path, rows[:256])
    else:
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ImportFailed(f"model: {file_name!r} is not an ONNX model: {exc}") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise ImportFailed(
            "model: the graph keeps its weights in external files; save it as one file "
            "(onnx.save_model(..., save_as_external_data=False))"
        )
    opset = _default_opset(model)
    if opset < MIN_OPSET:
        try:
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:
            raise ImportFailed(
                f"model: opset {opset} cannot be converted to {MIN_OPSET} ({exc}); export it "
                f"with opset_version >= {MIN_OPSET}"
            ) from None
    return SourceModel(
        model=model,
        format=model_format,
        file=file_name,
        sha256=sha256_of(path),
        bytes=len(data),
        opset=opset,
        torch_version=torch_version,
    )


def wrap_model(
    source: SourceModel, rows: np.ndarray, options: ImportOptions, directory: Path
) -> ExportedManifest:
    """Write every file of an imported version into `directory`; return its manifest."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    session = _session(source.model.SerializeToString())
    inputs, outputs = tensors_of(session.get_inputs()), tensors_of(session.get_outputs())
    try:
        plan = plan_import(inputs, outputs, options, rows.shape[1])
    except InvalidInput as exc:
        raise ImportFailed(exc.message) from None
    if options.loss == "bce" and options.scaling == "none":
        rules.check_bce_range(rows.min(axis=0).tolist(), rows.max(axis=0).tolist(), "none")
    scaling = fit_scaling(rows, options.scaling, options.loss)
    types = {t.name: t.type for t in [*inputs, *outputs]}
    reference = _run_user(session, plan.input, types[plan.input], scaling.apply(rows), plan)
    recon = reference[plan.reconstructions]
    if recon.shape != rows.shape:
        raise ImportFailed(
            f"model: output {plan.reconstructions!r} has shape {list(recon.shape)} for "
            f"{list(rows.shape)} rows; an autoencoder's reconstruction has the input's shape"
        )
    latent_dim = None
    if plan.codes is not None:
        codes = reference[plan.codes]
        if codes.ndim != 2 or codes.shape[0] != len(rows):
            raise ImportFailed(
                f"codes: output {plan.codes!r} has shape {list(codes.shape)} for {len(rows)} "
                "rows; codes are [n, k]"
            )
        latent_dim = int(codes.shape[1])
    if options.loss == "bce" and (recon.min() < 0 or recon.max() > 1):
        raise ImportFailed(
            f"loss: bce needs reconstructions in [0, 1]; output {plan.reconstructions!r} gives "
            f"values in [{recon.min():.4g}, {recon.max():.4g}] (end the graph in a sigmoid, or "
            "use mse)"
        )
    user = UserGraph(prefixed(source.model), plan, types, rows.shape[1], latent_dim)
    graphs = {"autoencoder": autoencoder_graph(user, scaling, options.loss)}
    if plan.codes is not None:
        graphs["encoder"] = encoder_graph(user, scaling)
        if separable(user):
            graphs["decoder"] = decoder_graph(user, scaling)
    specs = default_graphs(tuple(graphs), codes=plan.codes is not None)
    for key, graph in graphs.items():
        onnx.save_model(graph, str(directory / specs[key].file))
    max_abs_diff = check_parity(directory, specs, rows, scaling, reference, plan, options.loss)
    scores = _run_file(directory / specs["autoencoder"].file, "x", rows)["scores"]
    calibration = write_calibration(scores, directory)
    manifest = ExportedManifest(
        format=FORMAT,
        created_at=datetime.now(UTC).replace(microsecond=0),
        input_dim=rows.shape[1],
        latent_dim=latent_dim,
        loss=options.loss,
        config=options.model_dump(mode="json"),
        scaling=scaling.to_manifest(),
        threshold=float(np.quantile(calibration, options.threshold_quantile)),
        threshold_quantile=options.threshold_quantile,
        calibration=calibration_summary(calibration),
        parity=ParityCheck(max_abs_diff=max_abs_diff, rows=len(rows), rtol=RTOL, atol=ATOL),
        graphs=specs,
        versions=ToolVersions(
            aeserve=core.__version__,
            torch=source.torch_version,
            onnx=onnx.__version__,
            onnxruntime=ort.__version__,
            opset=max(source.opset, MIN_OPSET),
        ),
        source="imported",
        imported=ImportSummary(
            file=source.file,
            format=source.format,
            sha256=source.sha256,
            bytes=source.bytes,
            input=plan.input,
            reconstructions=plan.reconstructions,
            codes=plan.codes,
            batch="fixed" if plan.fixed_batch else "dynamic",
            opset=source.opset,
            rows_calibration=len(rows),
        ),
    )
    write_manifest(manifest, directory)
    return manifest


def check_parity(
    directory: Path,
    specs: dict[str, Any],
    rows: np.ndarray,
    scaling: Scaling,
    reference: dict[str, np.ndarray],
    plan: Any,
    loss: str,
) -> float:
    """Every wrapped graph against the user's own outputs, with scaling and score in NumPy."""
    s = scaling.apply(rows).astype(np.float64)
    s_hat = reference[plan.reconstructions].astype(np.float64)
    if loss == "bce":
        errors = -(
            s * np.maximum(np.log(s_hat), -100) + (1 - s) * np.maximum(np.log1p(-s_hat), -100)
        )
    else:
        errors = (s - s_hat) ** 2
    expected = {
        "reconstructions": s_hat * scaling.scale + scaling.offset,
        "feature_errors": errors,
        "scores": errors.mean(axis=1),
    }
    if plan.codes is not None:
        expected["codes"] = reference[plan.codes]
    worst = 0.0
    wrapped = _run_file(directory / specs["autoencoder"].file, "x", rows)
    for name, want in expected.items():
        worst = max(worst, _compare(f"autoencoder.onnx {name}", wrapped[name], want))
    if "encoder" in specs:
        codes = _run_file(directory / specs["encoder"].file, "x", rows)["codes"]
        worst = max(worst, _compare("encoder.onnx codes", codes, expected["codes"]))
    if "decoder" in specs:
        codes = np.asarray(reference[plan.codes], dtype=np.float32)
        rebuilt = _run_file(directory / specs["decoder"].file, "codes", codes)["reconstructions"]
        worst = max(
            worst, _compare("decoder.onnx reconstructions", rebuilt, expected["reconstructions"])
        )
    return worst


def _compare(what: str, actual: np.ndarray, expected: np.ndarray) -> float:
    try:
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    except AssertionError as exc:
        raise ImportFailed(
            f"{what} differs from the imported graph beyond rtol={RTOL}, atol={ATOL}:{exc}"
        ) from None
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))


def _session(model: bytes | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no base class below Exception
        raise ImportFailed(f"model: onnxruntime cannot load the graph: {exc}") from None


def _run_file(path: Path, input_name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    session = _session(str(path))
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {input_name: x}), strict=True))


def _run_user(
    session: ort.InferenceSession, input_name: str, input_type: str, s: np.ndarray, plan: Any
) -> dict[str, np.ndarray]:
    """The user's graph on scaled rows, one at a time when its batch axis is fixed to 1."""
    from core.importing import CASTABLE

    x = s.astype(CASTABLE[input_type])
    wanted = [plan.reconstructions, *([plan.codes] if plan.codes else [])]
    try:
        if plan.fixed_batch:
            parts = [session.run(wanted, {input_name: x[i : i + 1]}) for i in range(len(x))]
            results = [np.concatenate([p[j] for p in parts]) for j in range(len(wanted))]
        else:
            results = session.run(wanted, {input_name: x})
    except Exception as exc:
        raise ImportFailed(f"model: the graph fails on the calibration rows: {exc}") from None
    return {name: np.asarray(r, dtype=np.float32) for name, r in zip(wanted, results, strict=True)}


def _tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, node attributes, subgraphs'."""
    found = [*graph.initializer, *(sparse.values for sparse in graph.sparse_initializer)]
    for node in graph.node:
        for attribute in node.attribute:
            found.extend([attribute.t] if attribute.HasField("t") else attribute.tensors)
            subgraphs = [attribute.g] if attribute.HasField("g") else attribute.graphs
            for subgraph in subgraphs:
                found.extend(_tensors(subgraph))
    return found


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ImportFailed("model: the graph declares no opset of the default ONNX domain")


def _torchscript_to_onnx(path: Path, rows: np.ndarray) -> tuple[onnx.ModelProto, str]:
    """Export a TorchScript module x [n, d] → tensor or tuple of tensors to ONNX, and check the
    export against the module on `rows`."""
    import torch

    width = rows.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ImportFailed(f"model: not a loadable TorchScript module: {exc}") from None
        module.eval()
        example = torch.zeros(2, width)
        try:
            with torch.no_grad():
                out = module(example)
        except Exception as exc:
            raise ImportFailed(
                f"model: the TorchScript module fails on [2, {width}] rows: {exc}"
            ) from None
        count = len(out) if isinstance(out, (tuple, list)) else 1
        names = ["reconstructions"] if count == 1 else [f"output_{i}" for i in range(count)]
        buffer = io.BytesIO()
        try:
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object works, as the docs say
                dynamo=False,
                opset_version=17,
                input_names=[TORCHSCRIPT_INPUT],
                output_names=names,
                dynamic_axes={name: {0: "n"} for name in [TORCHSCRIPT_INPUT, *names]},
            )
        except Exception as exc:
            raise ImportFailed(
                f"model: the TorchScript module cannot be exported to ONNX: {exc}"
            ) from None
        with torch.no_grad():
            want = module(torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)))
    wanted = [want] if count == 1 else list(want)
    got = _session(buffer.getvalue()).run(names, {TORCHSCRIPT_INPUT: rows.astype(np.float32)})
    for name, actual, expected in zip(names, got, wanted, strict=True):
        _compare(f"the ONNX export of {name}", actual, expected.numpy().astype(np.float64))
    return onnx.load_model_from_string(buffer.getvalue()), str(torch.__version__)
