"""Exported graphs against an independent numpy forward pass built from the manifest."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.config import TrainConfig
from core.data import load_array
from core.manifest import ExportedManifest, default_graphs, read_exported_manifest
from models import export
from models.export import export_model
from models.parity import ParityError
from models.scoring import LatentStats, latent_slack
from models.training import TrainResult, fit

NUMPY_ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0),
    "tanh": np.tanh,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "leaky_relu": lambda a: np.where(a > 0, a, 0.01 * a),
    "gelu": lambda a: 0.5 * a * (1 + np.vectorize(math.erf)(a / math.sqrt(2))),
}

CASES = {
    "mse-standard": ("cardio", TrainConfig(loss="mse", scaling="standard")),
    "mse-minmax": ("cardio", TrainConfig(loss="mse", scaling="minmax", activation="tanh")),
    "mse-none": ("cardio", TrainConfig(loss="mse", scaling="none", activation="leaky_relu")),
    "bce-minmax": ("cardio", TrainConfig(loss="bce", scaling="minmax")),
    "bce-none": ("digits", TrainConfig(loss="bce", scaling="none", activation="sigmoid")),
    "mse-gelu": ("cardio", TrainConfig(activation="gelu", hidden_dims=[16, 8], latent_dim=4)),
    "mse-sigmoid-output": ("digits", TrainConfig(output_activation="sigmoid", scaling="minmax")),
    "mse-combined-score": ("cardio", TrainConfig(score="combined")),
    "bce-combined-score": ("cardio", TrainConfig(loss="bce", score="combined")),
    "mse-reconstruction-score": ("cardio", TrainConfig(score="reconstruction")),
    "bce-reconstruction-score": ("cardio", TrainConfig(loss="bce", score="reconstruction")),
}


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def reference(
    x: np.ndarray,
    manifest: ExportedManifest,
    weights: dict[str, np.ndarray],
    latent: LatentStats | None = None,
) -> dict[str, np.ndarray]:
    """docs/artifacts.md's math in float64 numpy: the graphs must agree with it. `latent`: the
    manifold or combined score's constants (graph constants, not in the manifest)."""
    scaling, config = manifest.scaling, manifest.config
    offset, scale = np.array(scaling.offset), np.array(scaling.scale)
    s = (x.astype(np.float64) - offset) / scale
    if scaling.clip:
        s = np.clip(s, 0, 1)

    def mlp(h: np.ndarray, prefix: str) -> np.ndarray:
        layers = sorted({int(k.split(".")[1]) for k in weights if k.startswith(prefix)})
        for i, layer in enumerate(layers):
            h = h @ weights[f"{prefix}.{layer}.weight"].T + weights[f"{prefix}.{layer}.bias"]
            if i < len(layers) - 1:
                h = NUMPY_ACTIVATIONS[config["activation"]](h)
        return h

    codes = mlp(s, "encoder")
    logits = mlp(codes, "decoder")
    sigmoid = config["output_activation"] == "sigmoid"
    s_hat = 1 / (1 + np.exp(-logits)) if sigmoid else logits
    if manifest.loss == "bce":
        errors = np.maximum(logits, 0) - logits * s + np.log1p(np.exp(-np.abs(logits)))
    else:
        errors = (s - s_hat) ** 2
    scores = errors.mean(axis=1)
    if latent is not None:

        def distance(points: np.ndarray) -> np.ndarray:
            u = (points - latent.center) / latent.spread
            reference = latent.reference.astype(np.float64)
            distances = np.sort(
                np.sqrt(((u[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)), axis=1
            )
            if latent.space == "reconstructions":  # the mean over the nearest
                return distances[:, : latent.neighbours].mean(axis=1)
            return distances[:, latent.neighbours - 1]

        if latent.feature_scale is not None:
            scores = (errors / latent.feature_scale).mean(axis=1)
        points = codes if latent.space == "codes" else s_hat
        scores = (
            scores / latent.reconstruction_mean
            + latent.weight * distance(points) / latent.latent_mean
        )
        if latent.input_mean is not None:
            scores = scores + latent.weight * distance(s) / latent.input_mean
    return {
        "codes": codes,
        "reconstructions": s_hat * scale + offset,
        "scores": scores,
        "feature_errors": errors,
        "s_hat": s_hat,
        "s": s,
    }


@pytest.fixture(scope="module")
def datasets(adbench_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Normal rows to train on and other rows (anomalies included) to score."""
    with np.load(adbench_dir / "6_cardio.npz") as archive:
        X, y = archive["X"].astype(np.float32), archive["y"]
    digits = load_array("builtin:digits")
    return {"cardio": (X[y == 0][:600], X[y == 1][:40]), "digits": (digits[:500], digits[500:540])}


@pytest.fixture(scope="module", params=list(CASES))
def exported(
    request: pytest.FixtureRequest,
    datasets: dict[str, tuple[np.ndarray, np.ndarray]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[TrainResult, Path, np.ndarray]:
    data, config = CASES[request.param]
    train_rows, other_rows = datasets[data]
    result = fit(train_rows, config.model_copy(update={"epochs": 3}))
    directory = tmp_path_factory.mktemp(request.param)
    export_model(result, directory)
    return result, directory, other_rows


def test_files_of_a_version(exported: tuple[TrainResult, Path, np.ndarray]) -> None:
    _, directory, _ = exported
    assert sorted(p.name for p in directory.iterdir()) == [
        "autoencoder.onnx",
        "autoencoder.pt",
        "calibration.npy",
        "decoder.onnx",
        "encoder.onnx",
        "manifest.json",
    ]


def test_graphs_match_numpy_reference(exported: tuple[TrainResult, Path, np.ndarray]) -> None:
    result, directory, other_rows = exported
    manifest = read_exported_manifest(directory)
    weights = {k: v.double().numpy() for k, v in result.model.state_dict().items()}
    x = np.concatenate([result.validation_rows, other_rows])
    assert (result.latent is None) == (manifest.config["score"] == "reconstruction")
    expected = reference(x, manifest, weights, result.latent)

    names = ["codes", "reconstructions", "scores", "feature_errors"]
    outputs = session(directory / "autoencoder.onnx").run(names, {"x": x})
    for name, actual in zip(names, outputs, strict=True):
        assert actual.dtype == np.float32
        if name == "scores" and result.latent is not None:
            # The distance term may move by the float32 rounding of its points, as much as the
            # parity check allows it (models/scoring.py latent_slack): on a model whose
            # reconstructions barely vary, that is more than rtol.
            latent = result.latent
            space = expected["codes"] if latent.space == "codes" else expected["s_hat"]
            slack = latent_slack(latent, space, 1e-5 + 1e-4 * np.abs(space)) / latent.latent_mean
            if latent.input_mean is not None:
                s = expected["s"]
                slack += latent_slack(latent, s, 1e-5 + 1e-4 * np.abs(s)) / latent.input_mean
            # The reconstruction term's own rounding, magnified by the feature scales.
            errors = expected["feature_errors"]
            moved = 1e-5 + 1e-4 * errors
            if latent.feature_scale is not None:
                moved = moved / latent.feature_scale
            rounding = moved.mean(axis=1) / latent.reconstruction_mean
            bound = 1e-5 + 1e-4 * np.abs(expected[name]) + latent.weight * slack + rounding
            assert np.all(np.abs(actual - expected[name]) <= bound), name
            continue
        np.testing.assert_allclose(actual, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    (codes,) = session(directory / "encoder.onnx").run(["codes"], {"x": x})
    np.testing.assert_allclose(codes, expected["codes"], rtol=1e-4, atol=1e-5)
    (reconstructions,) = session(directory / "decoder.onnx").run(
        ["reconstructions"], {"codes": codes}
    )
    np.testing.assert_allclose(reconstructions, expected["reconstructions"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 7])
def test_batch_dimension_is_dynamic(
    exported: tuple[TrainResult, Path, np.ndarray], rows: int
) -> None:
    result, directory, _ = exported
    d, k = result.model.input_dim, result.model.latent_dim
    codes, reconstructions, scores, errors = session(directory / "autoencoder.onnx").run(
        None, {"x": result.validation_rows[:rows]}
    )
    assert (codes.shape, reconstructions.shape, scores.shape, errors.shape) == (
        (rows, k),
        (rows, d),
        (rows,),
        (rows, d),
    )


def test_a_rows_score_does_not_depend_on_its_batch(
    exported: tuple[TrainResult, Path, np.ndarray],
) -> None:
    """The same row scores the same bits alone, in a batch and at another place in it: the
    float32 sums of onnxruntime's kernels round by where a row sits, so the graph sums in
    float64 (models/scoring.py)."""
    result, directory, other_rows = exported
    x = np.concatenate([result.validation_rows[:13], other_rows[:7]])
    graph = session(directory / "autoencoder.onnx")
    (together,) = graph.run(["scores"], {"x": x})
    order = np.random.default_rng(0).permutation(len(x))
    (shuffled,) = graph.run(["scores"], {"x": x[order]})
    alone = np.concatenate([graph.run(["scores"], {"x": x[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_array_equal(shuffled, together[order])
    np.testing.assert_array_equal(alone, together)


def test_graph_names_match_the_manifest(exported: tuple[TrainResult, Path, np.ndarray]) -> None:
    _, directory, _ = exported
    manifest = read_exported_manifest(directory)
    for graph in manifest.graphs.values():
        loaded = session(directory / graph.file)
        assert [i.name for i in loaded.get_inputs()] == graph.inputs
        assert [o.name for o in loaded.get_outputs()] == graph.outputs
        assert loaded.get_inputs()[0].shape[0] == "n"


def test_torchscript_reconstructs_scaled_rows(
    exported: tuple[TrainResult, Path, np.ndarray],
) -> None:
    result, directory, _ = exported
    scripted = torch.jit.load(str(directory / "autoencoder.pt"))
    s = torch.from_numpy(result.scaling.apply(result.validation_rows))
    with torch.no_grad():
        torch.testing.assert_close(scripted(s), result.model(s))
        torch.testing.assert_close(scripted.encode(s), result.model.encode(s))


def test_calibration_is_the_sorted_held_out_scores(
    exported: tuple[TrainResult, Path, np.ndarray],
) -> None:
    result, directory, _ = exported
    manifest = read_exported_manifest(directory)
    calibration = np.load(directory / "calibration.npy")
    (scores,) = session(directory / "autoencoder.onnx").run(
        ["scores"], {"x": result.validation_rows}
    )
    assert calibration.dtype == np.float32
    np.testing.assert_array_equal(calibration, np.sort(scores))
    assert manifest.threshold == float(np.quantile(calibration, 0.99))
    summary = manifest.calibration
    assert summary.n == len(result.validation_rows) == manifest.training.rows_validation
    assert (summary.min, summary.max) == (float(calibration[0]), float(calibration[-1]))
    assert summary.p99 == pytest.approx(manifest.threshold, rel=1e-6)


def test_manifest_fields(exported: tuple[TrainResult, Path, np.ndarray]) -> None:
    result, directory, _ = exported
    raw = json.loads((directory / "manifest.json").read_text())
    assert set(raw) == {
        "format", "created_at", "input_dim", "latent_dim", "loss", "config", "scaling",
        "threshold", "threshold_quantile", "calibration", "training", "parity", "graphs",
        "versions",
    }  # fmt: skip
    assert datetime.fromisoformat(raw["created_at"]).utcoffset() == timedelta(0)
    manifest = read_exported_manifest(directory)
    d = result.model.input_dim
    assert manifest.format == 1
    assert (manifest.input_dim, manifest.latent_dim) == (d, result.config.latent_dim)
    assert manifest.config == result.config.model_dump(mode="json")
    assert manifest.config["scaling"] == manifest.scaling.method != "auto"
    assert len(manifest.scaling.offset) == len(manifest.scaling.scale) == d
    assert manifest.scaling.clip == (manifest.loss == "bce")
    training = manifest.training
    assert training.epochs_run == len(training.history) == 3
    assert training.history[0].model_dump() == {
        "epoch": 1,
        "train_loss": result.history[0].train_loss,
        "val_loss": result.history[0].val_loss,
    }
    assert training.val_loss == min(e.val_loss for e in training.history)
    assert training.device == result.device
    parity = manifest.parity
    assert parity.rows == len(result.validation_rows)
    # Scores are about 5 on these rows; a distance of float32 points rounds to ~1e-4 of that.
    assert 0 <= parity.max_abs_diff <= 1e-3
    assert (parity.rtol, parity.atol) == (1e-4, 1e-5)
    assert manifest.versions.opset == 17
    assert manifest.versions.torch == torch.__version__
    assert manifest.graphs == default_graphs()


def test_parity_failure_raises(
    cardio: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = fit(cardio[:200], TrainConfig(epochs=1))
    real_run = export.run_onnx

    def skewed(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs = real_run(path, x)
        return {name: value + 1e-3 for name, value in outputs.items()}

    monkeypatch.setattr(export, "run_onnx", skewed)
    with pytest.raises(ParityError, match=r"autoencoder\.onnx codes differs from PyTorch"):
        export_model(result, tmp_path)
    assert not (tmp_path / "manifest.json").exists()
