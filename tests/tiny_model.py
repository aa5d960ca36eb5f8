"""A real, tiny model version in the exact artifact format (docs/artifacts.md), without torch.

The weights come from a seeded numpy generator, so a published manifest is enough to rebuild them
and compute every output independently in numpy:

    version = publish_tiny_model(repository, "tiny", loss="bce")
    manifest = repository.manifest("tiny", version)
    x = sample_vectors(manifest, 5)
    expected = reference_outputs(manifest, x)  # codes, reconstructions, scores, feature_errors

The network: scaling, then [tanh hidden layer], a linear bottleneck of `latent_dim` codes, [tanh
hidden layer], and a linear output (`mse`) or a sigmoid one (`bce`, whose feature errors come
from the logits). The TorchScript file `autoencoder.pt` is the one file of the format left out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.manifest import (
    FORMAT,
    CalibrationSummary,
    EpochLoss,
    ExportedManifest,
    ParityCheck,
    ScalingSpec,
    ToolVersions,
    TrainingSummary,
    default_graphs,
    write_manifest,
)
from core.repository import ModelRepository

OPSET = 17
CALIBRATION_ROWS = 49
THRESHOLD_QUANTILE = 0.9

Layer = tuple[np.ndarray, np.ndarray]  # (weights in × out, bias out), float32


@dataclass(frozen=True)
class TinyWeights:
    loss: str
    offset: np.ndarray  # (d,) float32
    scale: np.ndarray  # (d,) float32
    clip: bool
    encoder: list[Layer]  # tanh between layers, the last one linear
    decoder: list[Layer]  # tanh between layers, the last one gives the logits

    @property
    def input_dim(self) -> int:
        return int(self.offset.size)

    @property
    def latent_dim(self) -> int:
        return int(self.encoder[-1][1].size)


def tiny_weights(
    *,
    loss: str = "mse",
    seed: int = 0,
    input_dim: int = 4,
    latent_dim: int = 2,
    hidden_dim: int | None = None,
) -> TinyWeights:
    """Deterministic weights: the same arguments always give the same model."""
    if loss not in ("mse", "bce"):
        raise ValueError(f"loss must be 'mse' or 'bce', not {loss!r}")
    rng = np.random.default_rng(seed)
    dims = [input_dim, *([hidden_dim] if hidden_dim else []), latent_dim]

    def layers(sizes: list[int]) -> list[Layer]:
        return [
            (
                rng.normal(0.0, 1.0 / np.sqrt(a), (a, b)).astype(np.float32),
                rng.normal(0.0, 0.1, b).astype(np.float32),
            )
            for a, b in itertools.pairwise(sizes)
        ]

    encoder, decoder = layers(dims), layers(dims[::-1])
    if loss == "mse":  # standard scaling: offset = mean, scale = std
        offset = rng.normal(0.0, 1.0, input_dim).astype(np.float32)
        scale = rng.uniform(0.5, 2.0, input_dim).astype(np.float32)
    else:  # minmax with clip: offset = min, scale = max - min
        offset = rng.uniform(-1.0, 0.0, input_dim).astype(np.float32)
        scale = rng.uniform(1.0, 3.0, input_dim).astype(np.float32)
    return TinyWeights(loss, offset, scale, loss == "bce", encoder, decoder)


def weights_of(manifest: ExportedManifest) -> TinyWeights:
    """Rebuild the weights of a tiny model from its manifest."""
    hidden = manifest.config["hidden_dims"]
    return tiny_weights(
        loss=manifest.loss,
        seed=manifest.config["seed"],
        input_dim=manifest.input_dim,
        latent_dim=manifest.latent_dim,
        hidden_dim=hidden[0] if hidden else None,
    )


# -- numpy reference (float64) -------------------------------------------------------------------


def _forward(layers: list[Layer], h: np.ndarray) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(np.float64) + b.astype(np.float64)
        if i < len(layers) - 1:
            h = np.tanh(h)
    return h


def _unscale(weights: TinyWeights, logits: np.ndarray) -> np.ndarray:
    s_hat = logits if weights.loss == "mse" else 1.0 / (1.0 + np.exp(-logits))
    return s_hat * weights.scale.astype(np.float64) + weights.offset.astype(np.float64)


def reference_outputs_of(weights: TinyWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    s = (x - weights.offset.astype(np.float64)) / weights.scale.astype(np.float64)
    if weights.clip:
        s = np.clip(s, 0.0, 1.0)
    codes = _forward(weights.encoder, s)
    logits = _forward(weights.decoder, codes)
    if weights.loss == "mse":
        feature_errors = (s - logits) ** 2
    else:  # binary cross-entropy from the logits, as torch's BCEWithLogits computes it
        feature_errors = np.maximum(logits, 0) - logits * s + np.log1p(np.exp(-np.abs(logits)))
    return {
        "codes": codes,
        "reconstructions": _unscale(weights, logits),
        "scores": feature_errors.mean(axis=1),
        "feature_errors": feature_errors,
    }


def reference_outputs(manifest: ExportedManifest, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every autoencoder output for raw rows `x`, computed in float64 numpy."""
    return reference_outputs_of(weights_of(manifest), x)


def reference_decode(manifest: ExportedManifest, codes: np.ndarray) -> np.ndarray:
    """g(z) in raw units, computed in float64 numpy."""
    weights = weights_of(manifest)
    return _unscale(weights, _forward(weights.decoder, np.asarray(codes, dtype=np.float64)))


def sample_vectors(manifest: ExportedManifest, n: int, seed: int = 1) -> np.ndarray:
    """`n` float32 rows in raw units that look like the model's training data."""
    return _sample(manifest.scaling, n, seed)


def _sample(scaling: ScalingSpec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = len(scaling.offset)
    s = rng.uniform(0.0, 1.0, (n, d)) if scaling.clip else rng.normal(0.0, 1.0, (n, d))
    return (s * np.asarray(scaling.scale) + np.asarray(scaling.offset)).astype(np.float32)


def anomalous_vector(manifest: ExportedManifest) -> np.ndarray:
    """One float32 row (d,) that scores above every calibration score, so it is an anomaly."""
    scaling = manifest.scaling
    extremes = (0.0, 1.0) if scaling.clip else (-50.0, 50.0)
    corners = np.array(list(itertools.product(extremes, repeat=manifest.input_dim)))
    rows = corners * np.asarray(scaling.scale) + np.asarray(scaling.offset)
    scores = reference_outputs(manifest, rows)["scores"]
    if scores.max() <= manifest.calibration.max * 1.01:
        raise ValueError("no corner of the input space scores above the calibration scores")
    return rows[scores.argmax()].astype(np.float32)


# -- ONNX graphs ----------------------------------------------------------------------------------


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, array: np.ndarray) -> str:
        name = f"const{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        out = out or f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def layers(self, layers: list[Layer], h: str) -> str:
        for i, (w, b) in enumerate(layers):
            h = self.op("Add", self.op("MatMul", h, self.const(w)), self.const(b))
            if i < len(layers) - 1:
                h = self.op("Tanh", h)
        return h


def build_graphs(weights: TinyWeights) -> dict[str, onnx.ModelProto]:
    """The three graphs of the format, with scaling inside, batch dimension `n` dynamic."""
    d, k = weights.input_dim, weights.latent_dim
    widths = {"x": d, "codes": k, "reconstructions": d, "feature_errors": d}
    graphs = {}
    for graph, spec in default_graphs().items():
        inputs, outputs = spec.inputs, spec.outputs
        g = _GraphBuilder()
        if inputs == ["x"]:
            s = g.op("Div", g.op("Sub", "x", g.const(weights.offset)), g.const(weights.scale))
            if weights.clip:
                s = g.op("Clip", s, g.const(np.float32(0.0)), g.const(np.float32(1.0)))
            codes = g.layers(weights.encoder, s)
        else:
            codes = "codes"
        tensors = {"codes": codes}
        if graph != "encoder":
            logits = g.layers(weights.decoder, codes)
            s_hat = logits if weights.loss == "mse" else g.op("Sigmoid", logits)
            tensors["reconstructions"] = g.op(
                "Add", g.op("Mul", s_hat, g.const(weights.scale)), g.const(weights.offset)
            )
        if graph == "autoencoder":
            if weights.loss == "mse":
                diff = g.op("Sub", s, s_hat)
                errors = g.op("Mul", diff, diff)
            else:  # max(l, 0) - l * s + log(1 + exp(-|l|)), stable for any logit
                softplus = g.op("Softplus", g.op("Neg", g.op("Abs", logits)))
                errors = g.op(
                    "Add", g.op("Sub", g.op("Relu", logits), g.op("Mul", logits, s)), softplus
                )
            tensors["feature_errors"] = errors
            tensors["scores"] = g.op("ReduceMean", errors, axes=[1], keepdims=0)
        for name in outputs:
            if tensors[name] != name:
                g.op("Identity", tensors[name], out=name)

        def info(name: str) -> onnx.ValueInfoProto:
            shape = ["n", widths[name]] if name in widths else ["n"]
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

        model = helper.make_model(
            helper.make_graph(
                g.nodes,
                graph,
                [info(name) for name in inputs],
                [info(name) for name in outputs],
                g.initializers,
            ),
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=8,
        )
        onnx.checker.check_model(model)
        graphs[graph] = model
    return graphs


# -- a version folder -----------------------------------------------------------------------------


def write_tiny_version(
    folder: Path,
    *,
    loss: str = "mse",
    seed: int = 0,
    input_dim: int = 4,
    latent_dim: int = 2,
    hidden_dim: int | None = None,
    feature_names: list[str] | None = None,
) -> ExportedManifest:
    """Write every file of a version (before publishing) into `folder`; return the manifest."""
    weights = tiny_weights(
        loss=loss, seed=seed, input_dim=input_dim, latent_dim=latent_dim, hidden_dim=hidden_dim
    )
    graphs = default_graphs()
    for graph, model in build_graphs(weights).items():
        onnx.save(model, folder / graphs[graph].file)
    scaling = ScalingSpec(
        method="minmax" if weights.clip else "standard",
        offset=weights.offset.tolist(),
        scale=weights.scale.tolist(),
        clip=weights.clip,
    )
    calibration_rows = _sample(scaling, CALIBRATION_ROWS, seed=seed + 1000)
    calibration = np.sort(reference_outputs_of(weights, calibration_rows)["scores"]).astype(
        np.float32
    )
    np.save(folder / "calibration.npy", calibration)
    threshold = float(np.quantile(calibration, THRESHOLD_QUANTILE))
    manifest = ExportedManifest.model_validate(
        {
            "format": FORMAT,
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "input_dim": input_dim,
            "latent_dim": latent_dim,
            "loss": loss,
            "config": {
                "hidden_dims": [hidden_dim] if hidden_dim else [],
                "latent_dim": latent_dim,
                "activation": "tanh",
                "output_activation": "linear" if loss == "mse" else "sigmoid",
                "loss": loss,
                "optimizer": "adam",
                "learning_rate": 0.001,
                "weight_decay": 0.0,
                "epochs": 1,
                "batch_size": 32,
                "validation_fraction": 0.2,
                "early_stopping_patience": 5,
                "scaling": scaling.method,
                "threshold_quantile": THRESHOLD_QUANTILE,
                "seed": seed,
                "device": "cpu",
            },
            "scaling": scaling,
            "threshold": threshold,
            "threshold_quantile": THRESHOLD_QUANTILE,
            "calibration": CalibrationSummary(
                file="calibration.npy",
                n=int(calibration.size),
                min=float(calibration.min()),
                mean=float(calibration.mean()),
                median=float(np.median(calibration)),
                p90=float(np.quantile(calibration, 0.9)),
                p99=float(np.quantile(calibration, 0.99)),
                max=float(calibration.max()),
            ),
            "training": TrainingSummary(
                epochs_run=1,
                best_epoch=1,
                train_loss=threshold,
                val_loss=threshold,
                history=[EpochLoss(epoch=1, train_loss=threshold, val_loss=threshold)],
                rows_train=4 * CALIBRATION_ROWS,
                rows_validation=CALIBRATION_ROWS,
                seconds=0.01,
                device="cpu",
            ),
            "parity": ParityCheck(max_abs_diff=0.0, rows=CALIBRATION_ROWS, rtol=1e-4, atol=1e-5),
            "graphs": graphs,
            "versions": ToolVersions(aeserve="0.1.0", onnx=onnx.__version__, opset=OPSET),
            **({} if feature_names is None else {"feature_names": feature_names}),
        }
    )
    write_manifest(manifest, folder)
    return manifest


def publish_tiny_model(
    repository: ModelRepository,
    name: str = "tiny",
    *,
    loss: str = "mse",
    seed: int = 0,
    promote: bool = True,
    input_dim: int = 4,
    latent_dim: int = 2,
    hidden_dim: int | None = None,
    feature_names: list[str] | None = None,
) -> int:
    """Publish a tiny model as the next version of `name`; return its version number."""
    with repository.staging() as staging:
        write_tiny_version(
            staging,
            loss=loss,
            seed=seed,
            input_dim=input_dim,
            latent_dim=latent_dim,
            hidden_dim=hidden_dim,
            feature_names=feature_names,
        )
        return repository.publish(name, staging, promote=promote)
