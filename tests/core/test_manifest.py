"""The manifest model: what it writes, what it keeps, and how it refuses a broken manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import CorruptVersion
from core.manifest import (
    GRAPH_IO,
    MANIFEST,
    Manifest,
    default_graphs,
    dump_manifest,
    read_exported_manifest,
    read_manifest,
    write_manifest,
)
from tests.core.manifests import sample_manifest, sample_manifest_json

SHA = "0" * 64


def published_json(**changes: Any) -> dict[str, Any]:
    files = {"autoencoder.onnx": SHA, "calibration.npy": SHA}
    return {**sample_manifest_json(), "name": "m", "version": 3, "files": files, **changes}


def write_json(folder: Path, data: Any) -> Path:
    (folder / MANIFEST).write_text(json.dumps(data))
    return folder


def test_a_manifest_round_trips_through_its_file(tmp_path: Path) -> None:
    manifest = sample_manifest()
    write_manifest(manifest, tmp_path)
    assert read_exported_manifest(tmp_path) == manifest
    assert json.loads((tmp_path / MANIFEST).read_text()) == sample_manifest_json()
    published = manifest.published("m", 3, {"calibration.npy": SHA})
    (tmp_path / MANIFEST).write_bytes(dump_manifest(published))
    assert read_manifest(tmp_path) == published
    assert (published.name, published.version, published.files) == (
        "m",
        3,
        {"calibration.npy": SHA},
    )


def test_the_timestamp_keeps_its_iso_form(tmp_path: Path) -> None:
    written = published_json(created_at="2026-11-26T03:40:00+00:00")
    manifest = read_manifest(write_json(tmp_path, written))
    assert manifest.created_at.isoformat() == "2026-11-26T03:40:00+00:00"
    assert json.loads(dump_manifest(manifest))["created_at"] == "2026-11-26T03:40:00+00:00"


def test_unknown_fields_are_kept_and_written_back(tmp_path: Path) -> None:
    written = published_json(drift_baseline={"psi": [0.1, 0.2]})
    written["training"]["gpu"] = "H200"
    written["graphs"]["encoder"]["opset"] = 17
    written["graphs"]["int8"] = {"file": "int8.onnx", "inputs": ["x"], "outputs": ["scores"]}
    manifest = read_manifest(write_json(tmp_path, written))
    assert manifest.model_extra == {"drift_baseline": {"psi": [0.1, 0.2]}}
    assert manifest.training.model_extra == {"gpu": "H200"}
    assert json.loads(dump_manifest(manifest)) == written


def test_optional_fields_left_out_stay_out(tmp_path: Path) -> None:
    written = published_json()
    del written["training"]["device"], written["calibration"]["file"]
    manifest = read_manifest(write_json(tmp_path, written))
    assert (manifest.training.device, manifest.calibration.file) == (None, "calibration.npy")
    assert json.loads(dump_manifest(manifest)) == written


def test_the_default_graphs_are_graph_io() -> None:
    graphs = default_graphs()
    assert list(graphs) == list(GRAPH_IO)
    for name, (inputs, outputs) in GRAPH_IO.items():
        assert graphs[name].model_dump() == {
            "file": f"{name}.onnx",
            "inputs": list(inputs),
            "outputs": list(outputs),
        }


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]  # type: ignore[index]
        data[path[-1]] = value  # type: ignore[index]

    return change


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("threshold", value=float("nan")), "threshold: Input should be a finite number"),
        (_set("threshold", value=float("inf")), "threshold: Input should be a finite number"),
        (_set("threshold", value="high"), "threshold: Input should be a valid number"),
        (_drop("threshold"), "threshold: Field required"),
        (_set("loss", value="hinge"), "loss: Input should be 'mse' or 'bce'"),
        (_set("input_dim", value=0), "input_dim: Input should be greater than 0"),
        (_set("latent_dim", value=-1), "latent_dim: Input should be greater than 0"),
        (_set("input_dim", value=2.5), "input_dim: Input should be a valid integer"),
        (_set("threshold_quantile", value=1.0), "threshold_quantile: Input should be less than 1"),
        (_set("format", value=2), "format: Input should be 1"),
        (_set("created_at", value="2026-01-01T00:00:00"), "created_at: Input should have timezone"),
        (_set("config", value=[]), "config: Input should be an object"),
        (_set("scaling", "offset", value=[0.0]), "scaling.offset has 1 values; input_dim is 2"),
        (_set("scaling", "scale", 1, value=0.0), "scaling.scale: a scale of 0 at feature 1"),
        (_set("scaling", "method", value="auto"), "scaling.method: Input should be 'standard'"),
        (_set("calibration", "n", value=0), "calibration.n: Input should be greater than 0"),
        (
            _set("calibration", "file", value="../scores.npy"),
            "calibration.file: '../scores.npy' is not a file name inside the version folder",
        ),
        (
            _set("training", "history", 0, "val_loss", value=float("nan")),
            "training.history.0.val_loss: Input should be a finite number",
        ),
        (_drop("training", "epochs_run"), "training.epochs_run: Field required"),
        (_set("parity", "max_abs_diff", value=-1), "parity.max_abs_diff: Input should be greater"),
        (_drop("versions", "opset"), "versions.opset: Field required"),
        (_drop("graphs", "decoder"), "graphs: the decoder graph is missing"),
        (
            _set("graphs", "encoder", "inputs", value=["codes"]),
            "graphs: the encoder graph takes ['codes']; GRAPH_IO says ['x']",
        ),
        (
            _set("graphs", "autoencoder", "outputs", value=["codes"]),
            "graphs: the autoencoder graph lacks outputs "
            "['reconstructions', 'scores', 'feature_errors']",
        ),
        (
            _set("graphs", "encoder", "file", value="/etc/passwd"),
            "graphs.encoder.file: '/etc/passwd' is not a file name inside the version folder",
        ),
        (_set("name", value=""), "name: String should have at least 1 character"),
        (_set("version", value=0), "version: Input should be greater than 0"),
        (_set("files", "calibration.npy", value="abc"), "files.calibration.npy: String should"),
        (_set("files", "..", value=SHA), "files key '..': '..' is not a file name"),
    ],
)
def test_each_invalid_field_is_named(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    written = published_json()
    change(written)
    write_json(tmp_path, written)
    with pytest.raises(CorruptVersion) as caught:
        read_manifest(tmp_path)
    prefix = f"version folder {str(tmp_path)!r}: manifest.json: "
    assert caught.value.message.startswith(prefix + message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON (EOF while parsing an object at line 1 column 1)"),
        ("[]", "Input should be an object"),
        ("", "not valid JSON (EOF while parsing a value at line 1 column 0)"),
    ],
)
def test_an_unparsable_manifest_is_corrupt(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(CorruptVersion) as caught:
        read_manifest(tmp_path)
    assert caught.value.message == f"version folder {str(tmp_path)!r}: manifest.json: {message}"


def test_many_problems_are_counted_not_listed(tmp_path: Path) -> None:
    write_json(tmp_path, {"format": 1})
    with pytest.raises(CorruptVersion, match=r"created_at: Field required; .* \(and \d+ more\)$"):
        read_manifest(tmp_path)


def test_an_unpublished_manifest_is_not_a_published_one(tmp_path: Path) -> None:
    write_manifest(sample_manifest(), tmp_path)
    with pytest.raises(CorruptVersion, match=r"manifest\.json: name: Field required; version: "):
        read_manifest(tmp_path)
    # A trained version leaves out only the fields of an imported one (tests/core/test_importing.py)
    # and, for data without column names, the feature names (tests/core/test_feature_names.py).
    assert Manifest.model_fields.keys() - sample_manifest_json().keys() == {
        "name",
        "version",
        "files",
        "source",
        "imported",
        "feature_names",
    }


def test_importing_the_manifest_leaves_torch_and_onnxruntime_out() -> None:
    code = (
        "import core.manifest, sys; "
        "assert not {'torch', 'onnxruntime', 'numpy'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
