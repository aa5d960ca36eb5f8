from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.errors import CorruptVersion, InvalidInput
from core.manifest import MANIFEST, Manifest
from core.repository import ModelRepository
from core.settings import Settings
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions, resolve_providers
from service.inference.runtime import ModelRuntime
from service.inference.validation import check_batch, vectors_from_rows
from tests.tiny_model import (
    anomalous_vector,
    publish_tiny_model,
    reference_decode,
    reference_outputs,
    sample_vectors,
    write_tiny_version,
)

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
OPTIONS = RuntimeOptions(max_batch=16)


def load(repository: ModelRepository, name: str, version: int) -> ModelRuntime:
    return load_runtime(repository.verify(name, version), OPTIONS)


@pytest.fixture
def runtime(repository: ModelRepository, tiny_model: Manifest) -> ModelRuntime:
    return load(repository, "tiny", tiny_model.version)


@pytest.fixture(params=[("mse", None), ("bce", None), ("mse", 3), ("bce", 3)], ids=str)
def variant(
    request: pytest.FixtureRequest, repository: ModelRepository
) -> tuple[ModelRuntime, Manifest]:
    loss, hidden = request.param
    version = publish_tiny_model(repository, "variant", loss=loss, seed=7, hidden_dim=hidden)
    return load(repository, "variant", version), repository.manifest("variant", version)


def test_load_reads_the_manifest(runtime: ModelRuntime, tiny_model: Manifest) -> None:
    assert (runtime.name, runtime.version, runtime.input_dim, runtime.latent_dim) == (
        "tiny",
        1,
        4,
        2,
    )
    assert runtime.loss == "mse"
    assert runtime.threshold == tiny_model.threshold
    assert runtime.manifest == tiny_model
    assert runtime.providers == ["CPUExecutionProvider"]
    assert runtime.calibration.dtype == np.float32
    assert np.all(np.diff(runtime.calibration) >= 0)


def test_encode_decode_reconstruct_match_numpy(
    variant: tuple[ModelRuntime, Manifest],
) -> None:
    runtime, manifest = variant
    x = sample_vectors(manifest, 9)
    expected = reference_outputs(manifest, x)

    codes = asyncio.run(runtime.encode_async(x))
    reconstructions = asyncio.run(runtime.reconstruct_async(x))
    decoded = asyncio.run(runtime.decode_async(codes))

    assert codes.shape == (9, 2) and codes.dtype == np.float32
    assert reconstructions.shape == (9, 4) and reconstructions.dtype == np.float32
    np.testing.assert_allclose(codes, expected["codes"], **TOLERANCE)
    np.testing.assert_allclose(reconstructions, expected["reconstructions"], **TOLERANCE)
    np.testing.assert_allclose(decoded, reference_decode(manifest, codes), **TOLERANCE)
    np.testing.assert_allclose(reconstructions, decoded, **TOLERANCE)


def test_score_matches_numpy(variant: tuple[ModelRuntime, Manifest]) -> None:
    runtime, manifest = variant
    x = sample_vectors(manifest, 9)
    x[0] = anomalous_vector(manifest)
    expected = reference_outputs(manifest, x)

    result = asyncio.run(runtime.score_async(x, explain=True))

    assert result.scores.shape == (9,) and result.scores.dtype == np.float32
    assert result.feature_errors is not None and result.feature_errors.shape == (9, 4)
    np.testing.assert_allclose(result.scores, expected["scores"], **TOLERANCE)
    np.testing.assert_allclose(result.feature_errors, expected["feature_errors"], **TOLERANCE)
    np.testing.assert_allclose(result.scores, result.feature_errors.mean(axis=1), rtol=1e-6)
    assert result.threshold == manifest.threshold
    np.testing.assert_array_equal(result.anomalies, result.scores > manifest.threshold)
    assert result.anomalies[0]


def test_p_values_follow_the_conformal_formula(
    variant: tuple[ModelRuntime, Manifest], repository: ModelRepository
) -> None:
    runtime, manifest = variant
    calibration = np.load(repository.verify("variant", manifest.version) / "calibration.npy")
    x = sample_vectors(manifest, 16, seed=3)
    x[0] = anomalous_vector(manifest)

    result = asyncio.run(runtime.score_async(x))

    n_cal = calibration.size
    at_least = (calibration[None, :] >= result.scores[:, None]).sum(axis=1)
    assert result.p_values.dtype == np.float64
    np.testing.assert_array_equal(result.p_values, (1 + at_least) / (n_cal + 1))
    assert np.all(result.p_values >= 1 / (n_cal + 1)) and np.all(result.p_values <= 1)
    assert result.p_values[0] == 1 / (n_cal + 1)
    assert len(set(result.p_values.tolist())) > 3


def test_threshold_override_changes_anomalies_only(
    runtime: ModelRuntime, tiny_model: Manifest
) -> None:
    x = sample_vectors(tiny_model, 12)
    default = asyncio.run(runtime.score_async(x))
    threshold = float(np.median(default.scores))

    override = asyncio.run(runtime.score_async(x, threshold=threshold))

    assert override.threshold == threshold != default.threshold
    np.testing.assert_array_equal(override.scores, default.scores)
    np.testing.assert_array_equal(override.p_values, default.p_values)
    np.testing.assert_array_equal(override.anomalies, default.scores > threshold)
    assert override.anomalies.sum() == 6
    assert default.feature_errors is None


def test_score_fetches_only_the_outputs_it_needs(runtime: ModelRuntime) -> None:
    calls: list[list[str]] = []
    session = runtime._sessions["autoencoder"]

    class Recording:
        def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> Any:
            calls.append(outputs)
            return session.run(outputs, feeds)

    runtime._sessions["autoencoder"] = Recording()  # type: ignore[assignment]
    asyncio.run(runtime.score_async(np.zeros((2, 4))))
    asyncio.run(runtime.score_async(np.zeros((2, 4)), explain=True))
    asyncio.run(runtime.reconstruct_async(np.zeros((2, 4))))
    assert calls == [["scores"], ["scores", "feature_errors"], ["reconstructions"]]


def test_lists_and_single_vectors_are_batches(runtime: ModelRuntime) -> None:
    rows = [[0.5, 1.0, -1.0, 2.0], [1, 2, 3, 4]]
    np.testing.assert_array_equal(
        asyncio.run(runtime.encode_async(rows)), asyncio.run(runtime.encode_async(np.array(rows)))
    )
    np.testing.assert_array_equal(
        asyncio.run(runtime.encode_async(rows[0])),
        asyncio.run(runtime.encode_async(np.array(rows[:1]))),
    )
    np.testing.assert_array_equal(
        asyncio.run(runtime.encode_async(np.array(rows[0]))),
        asyncio.run(runtime.encode_async(rows[:1])),
    )


def test_check_vectors_gives_c_contiguous_float32(runtime: ModelRuntime) -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    checked = runtime.check_vectors(fortran)
    assert checked.dtype == np.float32 and checked.flags.c_contiguous
    np.testing.assert_array_equal(checked, fortran)
    already = np.ones((2, 4), dtype=np.float32)
    assert runtime.check_vectors(already) is already
    assert runtime.check_vectors(np.ones((2, 4), dtype=np.int64)).dtype == np.float32


def _with(value: float, row: int, column: int, shape: tuple[int, int] = (3, 4)) -> np.ndarray:
    x = np.zeros(shape)
    x[row, column] = value
    return x


VECTOR_ERRORS: list[tuple[Any, str]] = [
    (np.zeros((3, 12)), "row 0 has 12 values; model 'tiny' v1 expects 4"),
    ([[0.0] * 4] * 3 + [[0.0] * 12], "row 3 has 12 values; model 'tiny' v1 expects 4"),
    ([[0.0] * 4, [1.0]], "row 1 has 1 value; model 'tiny' v1 expects 4"),
    ([[0.0] * 4, 7.0], "row 1 is not a list of numbers"),
    ([[0.0, 1.0, None, 2.0]], "row 0, column 2 is None; values must be finite numbers"),
    ([[0.0] * 4, [0.0, "a", 0.0, 0.0]], "row 1, column 1 is 'a'; values must be finite numbers"),
    (_with(np.nan, 2, 1), "row 2, column 1 is NaN; values must be finite numbers"),
    (_with(np.inf, 0, 3), "row 0, column 3 is inf; values must be finite numbers"),
    (_with(-np.inf, 1, 0), "row 1, column 0 is -inf; values must be finite numbers"),
    ([[0.0, 0.0, float("nan"), 0.0]], "row 0, column 2 is NaN; values must be finite numbers"),
    (
        _with(1e300, 1, 2),
        "row 1, column 2 is 1e+300, beyond the float32 range; values must be finite numbers",
    ),
    (np.zeros((0, 4)), "batch is empty"),
    ([], "batch is empty"),
    (np.zeros((17, 4)), "batch has 17 rows; the limit is 16"),
    ([[0.0] * 4] * 17, "batch has 17 rows; the limit is 16"),
    (np.zeros((2, 2, 4)), "expected a 2-D array of shape (n, 4); got shape (2, 2, 4)"),
    (np.array([["a"] * 4]), "values must be finite numbers; got <U1 data"),
    (np.ones((1, 4), dtype=complex), "values must be finite numbers; got complex128 data"),
    (
        np.array([[1.0, None, 2.0, 3.0]], dtype=object),
        "row 0, column 1 is NaN; values must be finite numbers",
    ),
    (np.array([[1.0, "x", 2.0, 3.0]], dtype=object), "values must be finite numbers"),
]


@pytest.mark.parametrize(("vectors", "message"), VECTOR_ERRORS)
@pytest.mark.parametrize("method", ["encode_async", "reconstruct_async", "score_async"])
def test_bad_vectors_are_refused_with_the_row_and_dimension(
    runtime: ModelRuntime, method: str, vectors: Any, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        asyncio.run(getattr(runtime, method)(vectors))
    assert caught.value.message == message
    assert caught.value.status_code == 422


CODE_ERRORS: list[tuple[Any, str]] = [
    (np.zeros((2, 3)), "row 0 has 3 values; model 'tiny' v1 expects 2 (its latent dimension)"),
    ([[0.0, 0.0], [0.0]], "row 1 has 1 value; model 'tiny' v1 expects 2 (its latent dimension)"),
    (_with(np.nan, 1, 1, (2, 2)), "row 1, column 1 is NaN; values must be finite numbers"),
    (np.zeros((0, 2)), "batch is empty"),
]


@pytest.mark.parametrize(("codes", "message"), CODE_ERRORS)
def test_bad_codes_are_refused(runtime: ModelRuntime, codes: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        asyncio.run(runtime.decode_async(codes))
    assert caught.value.message == message


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_a_non_finite_threshold_is_refused(runtime: ModelRuntime, threshold: float) -> None:
    with pytest.raises(InvalidInput, match=r"^threshold must be a finite number$"):
        asyncio.run(runtime.score_async(np.zeros((1, 4)), threshold=threshold))


def test_vectors_from_rows_packs_float32() -> None:
    array = vectors_from_rows([[1, 2.5], [3, 4]], 2, "model 'm' v1")
    assert array.dtype == np.float32 and array.shape == (2, 2)
    np.testing.assert_array_equal(array, [[1, 2.5], [3, 4]])
    assert vectors_from_rows([], 3, "model 'm' v1").shape == (0, 3)
    with pytest.raises(InvalidInput, match=r"^row 1 has 3 values; model 'm' v1 expects 2$"):
        vectors_from_rows([[1, 2], [1, 2, 3]], 2, "model 'm' v1")


# -- infer: the generic entry point ---------------------------------------------------------------


def test_infer_runs_a_graph_by_tensor_names(runtime: ModelRuntime, tiny_model: Manifest) -> None:
    x = sample_vectors(tiny_model, 5)
    expected = reference_outputs(tiny_model, x)

    scores = asyncio.run(runtime.infer_async("autoencoder", {"x": x}, ["scores"]))
    everything = asyncio.run(runtime.infer_async("autoencoder", {"x": x}, []))
    decoded = asyncio.run(
        runtime.infer_async("decoder", {"codes": everything["codes"]}, ["reconstructions"])
    )

    assert list(scores) == ["scores"]
    np.testing.assert_array_equal(scores["scores"], asyncio.run(runtime.score_async(x)).scores)
    assert list(everything) == ["codes", "reconstructions", "scores", "feature_errors"]
    for name, value in everything.items():
        np.testing.assert_allclose(value, expected[name], **TOLERANCE)
    np.testing.assert_allclose(decoded["reconstructions"], expected["reconstructions"], **TOLERANCE)


@pytest.mark.parametrize(
    ("graph", "inputs", "outputs", "message"),
    [
        (
            "vae",
            {"x": np.zeros((1, 4))},
            [],
            "model 'tiny' v1 has no graph 'vae'; it has autoencoder, encoder, decoder",
        ),
        (
            "encoder",
            {"x": np.zeros((1, 4)), "y": np.zeros(1)},
            [],
            "unexpected input 'y'; encoder takes x",
        ),
        ("decoder", {}, [], "decoder needs input 'codes'"),
        (
            "encoder",
            {"x": np.zeros((1, 4))},
            ["scores"],
            "encoder has no output 'scores'; it gives codes",
        ),
        ("encoder", {"x": np.zeros((1, 5))}, [], "row 0 has 5 values; model 'tiny' v1 expects 4"),
    ],
)
def test_infer_refuses_unknown_names(
    runtime: ModelRuntime, graph: str, inputs: dict[str, Any], outputs: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        asyncio.run(runtime.infer_async(graph, inputs, outputs))
    assert caught.value.message == message


# -- load-time checks -----------------------------------------------------------------------------


def publish_tampered(
    repository: ModelRepository, tamper: Callable[[Path, dict[str, Any]], None]
) -> int:
    """Publish a tiny model after `tamper(folder, manifest)` edits its files and its manifest.

    The files' checksums are those of the tampered files; the tampered manifest (JSON) replaces
    the published one afterwards, as the repository, which validates it, would not publish it.
    """
    with repository.staging() as staging:
        manifest = write_tiny_version(staging).model_dump(mode="json", exclude_unset=True)
        tamper(staging, manifest)
        version = repository.publish("broken", staging)
    path = repository.version_dir("broken", version) / MANIFEST
    published = json.loads(path.read_text())
    filled = {key: published[key] for key in ("name", "version", "files")}
    path.write_text(json.dumps({**manifest, **filled}))
    return version


def _set(key: str, value: Any) -> Callable[[Path, dict[str, Any]], None]:
    def tamper(folder: Path, manifest: dict[str, Any]) -> None:
        manifest[key] = value

    return tamper


def _rename_encoder_input(folder: Path, manifest: dict[str, Any]) -> None:
    manifest["graphs"]["encoder"]["inputs"] = ["features"]


def _decoder_as_encoder(folder: Path, manifest: dict[str, Any]) -> None:
    shutil.copy(folder / "decoder.onnx", folder / "encoder.onnx")


def _wider_encoder(folder: Path, manifest: dict[str, Any]) -> None:
    other = folder / "wider"
    other.mkdir()
    write_tiny_version(other, input_dim=5)
    (other / "encoder.onnx").rename(folder / "encoder.onnx")
    shutil.rmtree(other)


def _drop_scores_from_the_graph(folder: Path, manifest: dict[str, Any]) -> None:
    model = onnx.load(folder / "autoencoder.onnx")
    (scores,) = [o for o in model.graph.output if o.name == "scores"]
    model.graph.output.remove(scores)
    onnx.save(model, folder / "autoencoder.onnx")


def _drop_scores(folder: Path, manifest: dict[str, Any]) -> None:
    _drop_scores_from_the_graph(folder, manifest)
    manifest["graphs"]["autoencoder"]["outputs"].remove("scores")


def _garbage_decoder(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "decoder.onnx").write_bytes(b"not a model")


def _no_decoder_graph(folder: Path, manifest: dict[str, Any]) -> None:
    del manifest["graphs"]["decoder"]


def _bad_calibration(folder: Path, manifest: dict[str, Any]) -> None:
    np.save(folder / "calibration.npy", np.array([[0.1, np.nan]], dtype=np.float32))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            _rename_encoder_input,
            "manifest.json: graphs: the encoder graph takes ['features']; GRAPH_IO says ['x']",
        ),
        (
            _decoder_as_encoder,
            "model 'broken' v1: encoder.onnx has inputs ['codes']; the manifest lists ['x']",
        ),
        (_set("input_dim", 5), "manifest.json: scaling.offset has 4 values; input_dim is 5"),
        (
            _set("latent_dim", 3),
            "model 'broken' v1: autoencoder.onnx has 'codes' with 2 columns; "
            "the manifest's latent_dim is 3",
        ),
        (
            _wider_encoder,
            "model 'broken' v1: encoder.onnx has 'x' with 5 columns; the manifest's input_dim is 4",
        ),
        (
            _drop_scores_from_the_graph,
            "model 'broken' v1: autoencoder.onnx has outputs "
            "['codes', 'feature_errors', 'reconstructions']; the manifest lists "
            "['codes', 'reconstructions', 'scores', 'feature_errors']",
        ),
        (_drop_scores, "manifest.json: graphs: the autoencoder graph lacks outputs ['scores']"),
        (_no_decoder_graph, "manifest.json: graphs: the decoder graph is missing"),
        (
            _bad_calibration,
            "model 'broken' v1: calibration.npy must hold a 1-D array of finite scores",
        ),
        (_set("loss", "hinge"), "manifest.json: loss: Input should be 'mse' or 'bce'"),
        (_set("threshold", None), "manifest.json: threshold: Input should be a valid number"),
    ],
    ids=lambda p: getattr(p, "__name__", None),
)
def test_a_version_that_contradicts_its_manifest_is_refused(
    repository: ModelRepository, tamper: Callable[[Path, dict[str, Any]], None], message: str
) -> None:
    version = publish_tampered(repository, tamper)
    with pytest.raises(CorruptVersion) as caught:
        load(repository, "broken", version)
    assert caught.value.message.endswith(message)


def test_an_unreadable_graph_is_refused(repository: ModelRepository) -> None:
    version = publish_tampered(repository, _garbage_decoder)
    with pytest.raises(CorruptVersion, match=r"^model 'broken' v1: decoder.onnx cannot be loaded"):
        load(repository, "broken", version)


# -- options ----------------------------------------------------------------------------------


def test_cuda_falls_back_to_the_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert resolve_providers("cuda") == ("CPUExecutionProvider",)
    assert "no CUDAExecutionProvider" in caplog.text
    assert resolve_providers("cpu") == ("CPUExecutionProvider",)


def test_cuda_is_used_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    assert resolve_providers("cuda") == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert resolve_providers("cpu") == ("CPUExecutionProvider",)


def test_options_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        model_repository=tmp_path,
        intra_op_threads=2,
        inter_op_threads=3,
        graph_optimization="basic",
        max_batch=100,
        providers="cpu",
    )
    options = RuntimeOptions.from_settings(settings)
    assert options == RuntimeOptions(("CPUExecutionProvider",), 2, 3, "basic", 100)
    session_options = options.session_options()
    assert session_options.intra_op_num_threads == 2
    assert session_options.inter_op_num_threads == 3
    assert session_options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_importing_the_runtime_leaves_torch_and_fastapi_out() -> None:
    code = (
        "import sys, service.inference.runtime, service.inference.registry; "
        "print(sorted(m for m in ('torch', 'fastapi', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[3],
    )
    assert result.stdout.strip() == "[]"


def test_finite_values_whose_sum_overflows_pass_the_check() -> None:
    big = np.full((2, 4), 3e38, dtype=np.float32)  # each finite; their float32 sum is inf
    assert check_batch(big, 4, 10, "model 'm' v1") is big
    big[1, 2] = np.inf
    with pytest.raises(InvalidInput, match="row 1, column 2 is inf"):
        check_batch(big, 4, 10, "model 'm' v1")
