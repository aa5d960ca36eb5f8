"""Importing autoencoders trained elsewhere: `aeserve import`, then served by the runtime with
scores equal to the loss computed by hand from the foreign model's own outputs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from core.errors import GraphUnavailable
from core.importing import ImportOptions
from core.repository import ModelRepository
from models.importing import ImportFailed, import_and_publish
from service.cli import app
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions
from service.inference.runtime import ModelRuntime
from tests import foreign_models as foreign

D, K = 6, 2


def normal_rows(n: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 2)) @ rng.normal(size=(2, D))
    return (signal + 0.1 * rng.normal(size=(n, D))).astype(np.float32)


def unit_rows(n: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, D)).astype(np.float32)


def runtime(repository: ModelRepository, name: str, version: int = 1) -> ModelRuntime:
    folder = repository.verify(name, version)
    return load_runtime(folder, RuntimeOptions(dynamic_batching=False))


def score(rt: ModelRuntime, x: np.ndarray, explain: bool = True):  # type: ignore[no-untyped-def]
    return asyncio.run(rt.score_async(x, explain=explain))


def p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """As documented: (1 + #{calibration scores ≥ s}) / (n_cal + 1)."""
    at_least = (calibration[None, :] >= scores[:, None]).sum(axis=1)
    return (1 + at_least) / (len(calibration) + 1)


def test_a_torch_autoencoder_imported_by_the_cli_scores_as_computed_by_hand(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows()
    module = foreign.train_briefly(foreign.PlainAutoencoder(D, K), rows)
    path = foreign.export(module, tmp_path / "ae.onnx", D, ["recon", "z"])
    np.save(tmp_path / "normal.npy", rows)

    result = CliRunner().invoke(
        app,
        [
            "import",
            str(path),
            "--name",
            "foreign",
            "--calibration",
            str(tmp_path / "normal.npy"),
            "--codes",
            "z",
            "--repository",
            str(repository.root),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "imported foreign version 1 (active): 6 features, codes of width 2" in result.output

    rt = runtime(repository, "foreign")
    manifest = rt.manifest
    assert manifest.source == "imported" and manifest.training is None
    assert manifest.imported is not None
    assert manifest.imported.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert (manifest.imported.input, manifest.imported.reconstructions) == ("input", "recon")
    assert sorted(manifest.graphs) == ["autoencoder", "decoder", "encoder"]

    # The threshold is the quantile of the calibration scores, each the hand-computed loss.
    own = foreign.run(path, rows)
    calibration_scores = ((rows - own["recon"]) ** 2).mean(axis=1)
    assert_allclose(np.sort(rt.calibration), np.sort(calibration_scores), rtol=1e-5, atol=1e-6)
    assert_allclose(manifest.threshold, np.quantile(np.sort(rt.calibration), 0.99), rtol=1e-6)

    new = np.vstack([normal_rows(20, seed=1), 5 * np.ones((1, D), np.float32)])
    own = foreign.run(path, new)
    errors = (new - own["recon"]) ** 2
    result_ = score(rt, new)
    assert_allclose(result_.scores, errors.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert_allclose(result_.feature_errors, errors, rtol=1e-5, atol=1e-6)
    assert_allclose(result_.p_values, p_values(rt.calibration, result_.scores))
    assert result_.anomalies[-1] and result_.p_values[-1] == 1 / (len(rows) + 1)
    assert_allclose(asyncio.run(rt.reconstruct_async(new)), own["recon"], rtol=1e-5, atol=1e-6)
    codes = asyncio.run(rt.encode_async(new))
    assert_allclose(codes, own["z"], rtol=1e-5, atol=1e-6)
    with_torch = module.decoder(__import__("torch").from_numpy(codes)).detach().numpy()
    assert_allclose(asyncio.run(rt.decode_async(codes)), with_torch, rtol=1e-4, atol=1e-5)


def test_scaling_goes_in_front_of_the_foreign_graph(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows() * 10 + 3
    mean, std = rows.astype(np.float64).mean(axis=0), rows.astype(np.float64).std(axis=0)
    module = foreign.train_briefly(
        foreign.PlainAutoencoder(D, K), ((rows - mean) / std).astype(np.float32)
    )
    path = foreign.export(module, tmp_path / "ae.onnx", D, ["recon", "z"])
    options = ImportOptions(scaling="standard", codes="z")
    import_and_publish(path, rows, "scaled", options, repository, promote=True)
    rt = runtime(repository, "scaled")

    new = normal_rows(10, seed=2) * 10 + 3
    s = ((new - mean) / std).astype(np.float32)
    own = foreign.run(path, s)["recon"]
    assert_allclose(score(rt, new).scores, ((s - own) ** 2).mean(axis=1), rtol=1e-4, atol=1e-5)
    assert_allclose(asyncio.run(rt.reconstruct_async(new)), own * std + mean, rtol=1e-4, atol=1e-4)


def test_a_second_architecture_with_bce_and_a_fixed_batch_of_one(
    tmp_path: Path, repository: ModelRepository
) -> None:
    """GELU layers ending in a sigmoid, exported for exactly one row and without codes: the
    wrapper loops over the rows, and the score is PyTorch's BCELoss."""
    rows = unit_rows()
    module = foreign.train_briefly(foreign.SigmoidAutoencoder(D), rows)
    path = foreign.export(module, tmp_path / "bce.onnx", D, ["out"], fixed_batch=True)
    options = ImportOptions(loss="bce")
    published = import_and_publish(path, rows, "bce", options, repository, promote=True)
    assert published.manifest.imported is not None
    assert published.manifest.imported.batch == "fixed"
    assert published.manifest.latent_dim is None
    assert sorted(published.manifest.graphs) == ["autoencoder"]
    rt = runtime(repository, "bce")

    new = unit_rows(7, seed=3)
    torch = __import__("torch")
    with torch.no_grad():
        want = torch.nn.functional.binary_cross_entropy(
            module(torch.from_numpy(new)), torch.from_numpy(new), reduction="none"
        ).numpy()
    result = score(rt, new)
    assert_allclose(result.feature_errors, want, rtol=1e-4, atol=1e-5)
    assert_allclose(result.scores, want.mean(axis=1), rtol=1e-4, atol=1e-5)
    assert_allclose(result.p_values, p_values(rt.calibration, result.scores))


def test_without_a_code_output_encode_and_decode_are_a_conflict(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows()
    module = foreign.train_briefly(foreign.PlainAutoencoder(D, K), rows)
    path = foreign.export(module, tmp_path / "ae.onnx", D, ["recon", "z"])
    # Two outputs and no --codes: the reconstruction must be named.
    with pytest.raises(ImportFailed, match="name the reconstruction"):
        import_and_publish(path, rows, "nocodes", ImportOptions(), repository, promote=True)
    options = ImportOptions(reconstructions="recon")
    import_and_publish(path, rows, "nocodes", options, repository, promote=True)
    rt = runtime(repository, "nocodes")
    with pytest.raises(
        GraphUnavailable, match="has no encoder: it was imported from a graph without a code output"
    ):
        asyncio.run(rt.encode_async(rows))
    with pytest.raises(GraphUnavailable, match="has no decoder"):
        asyncio.run(rt.decode_async(np.zeros((1, K), np.float32)))
    assert rt.outputs_of("autoencoder") == ("reconstructions", "scores", "feature_errors")


def test_a_skip_connection_keeps_the_encoder_but_not_the_decoder(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows()
    module = foreign.train_briefly(foreign.SkipAutoencoder(D, K), rows)
    path = foreign.export(module, tmp_path / "skip.onnx", D, ["recon", "z"])
    options = ImportOptions(codes="z")
    published = import_and_publish(path, rows, "skip", options, repository, promote=True)
    assert sorted(published.manifest.graphs) == ["autoencoder", "encoder"]
    rt = runtime(repository, "skip")
    assert_allclose(
        asyncio.run(rt.encode_async(rows)), foreign.run(path, rows)["z"], rtol=1e-5, atol=1e-6
    )
    with pytest.raises(GraphUnavailable, match="cannot be cut at the codes"):
        asyncio.run(rt.decode_async(np.zeros((1, K), np.float32)))


def test_a_torchscript_module_is_converted_and_imported(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows()
    module = foreign.train_briefly(foreign.PlainAutoencoder(D, K, foreign.nn.ReLU), rows)
    path = foreign.script(module, tmp_path / "ae.pt")
    np.save(tmp_path / "normal.npy", rows)
    result = CliRunner().invoke(
        app,
        [
            "import",
            str(path),
            "--name",
            "scripted",
            "--calibration",
            str(tmp_path / "normal.npy"),
            "--codes",
            "output_1",
            "--reconstructions",
            "output_0",
            "--repository",
            str(repository.root),
        ],
    )
    assert result.exit_code == 0, result.output
    rt = runtime(repository, "scripted")
    assert rt.manifest.imported is not None and rt.manifest.imported.format == "torchscript"
    torch = __import__("torch")
    new = normal_rows(10, seed=4)
    with torch.no_grad():
        recon, codes = (t.numpy() for t in module(torch.from_numpy(new)))
    assert_allclose(score(rt, new).scores, ((new - recon) ** 2).mean(axis=1), rtol=1e-4, atol=1e-6)
    assert_allclose(asyncio.run(rt.encode_async(new)), codes, rtol=1e-4, atol=1e-5)


def test_a_new_import_is_hot_swapped_in_like_any_version(
    tmp_path: Path, repository: ModelRepository
) -> None:
    rows = normal_rows()
    first = foreign.export(foreign.PlainAutoencoder(D, K), tmp_path / "a.onnx", D, ["recon", "z"])
    second = foreign.linear(tmp_path / "b.onnx", D)
    import_and_publish(first, rows, "swap", ImportOptions(codes="z"), repository, promote=True)
    published = import_and_publish(second, rows, "swap", ImportOptions(), repository, promote=True)
    assert (published.version, repository.active_version("swap")) == (2, 2)
    # The input dimension is the model's: a different width is refused before anything runs.
    with pytest.raises(ValueError, match="expects 6"):
        import_and_publish(second, rows[:, :4], "swap", ImportOptions(), repository, promote=True)


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (
            lambda p: foreign.linear(p, D, D - 1),
            ImportOptions(),
            "output 'y' has 5 values a row, its input 6",
        ),
        (lambda p: foreign.linear(p, D, batch=4), ImportOptions(), "fixed to 4 rows"),
        (
            lambda p: foreign.linear(p, D),
            ImportOptions(codes="z"),
            "codes: the graph has no output 'z'",
        ),
        (lambda p: p.write_bytes(b"\x08\x07garbage"), ImportOptions(), "model:"),
        (
            lambda p: foreign.external_weights(p, "weights.bin"),
            ImportOptions(),
            "model: the graph keeps its weights in external files",
        ),
    ],
)
def test_the_job_side_refuses_what_is_not_an_autoencoder(
    tmp_path: Path,
    repository: ModelRepository,
    make,
    options: ImportOptions,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(ImportFailed, match=message):
        import_and_publish(path, normal_rows(), "refused", options, repository, promote=True)
    assert repository.names() == []


def test_bce_needs_reconstructions_in_the_unit_interval(
    tmp_path: Path, repository: ModelRepository
) -> None:
    path = foreign.linear(tmp_path / "linear.onnx", D)
    with pytest.raises(ImportFailed, match=r"bce needs reconstructions in \[0, 1\]"):
        import_and_publish(
            path, unit_rows(), "bce", ImportOptions(loss="bce"), repository, promote=True
        )
