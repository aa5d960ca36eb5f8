"""The rules an imported graph's signature must keep, the manifest of an imported version, and
the store that holds the uploaded files."""

from __future__ import annotations

import io
from typing import Any

import pytest

from core.errors import InvalidInput, PayloadTooLarge
from core.importing import ImportOptions, TensorInfo, plan_import
from core.manifest import ExportedManifest, default_graphs
from core.model_files import ModelFileStore
from tests.core.manifests import sample_manifest_json

F = "tensor(float)"


def tensor(name: str, shape: tuple[Any, ...] | None, kind: str = F) -> TensorInfo:
    return TensorInfo(name, kind, shape)


def test_a_plain_autoencoder_is_read_whatever_its_names() -> None:
    plan = plan_import(
        [tensor("input", ("batch", 6))],
        [tensor("recon", ("batch", 6)), tensor("z", ("batch", 2))],
        ImportOptions(codes="z"),
        6,
    )
    assert (plan.input, plan.reconstructions, plan.codes) == ("input", "recon", "z")
    assert (plan.input_dim, plan.latent_dim, plan.fixed_batch) == (6, 2, False)


def test_symbolic_widths_are_taken_from_the_rows_and_a_batch_of_one_is_looped() -> None:
    plan = plan_import(
        [tensor("x", (1, "d"), "tensor(double)")], [tensor("y", None)], ImportOptions(), 5
    )
    assert (plan.input_dim, plan.fixed_batch) == (5, True)


@pytest.mark.parametrize(
    ("outputs", "options", "message"),
    [
        (
            [tensor("a", ("n", 6)), tensor("b", ("n", 6))],
            ImportOptions(),
            "model: the graph has outputs 'a', 'b'; name the reconstruction",
        ),
        (
            [tensor("z", ("n", 2))],
            ImportOptions(codes="z"),
            "model: the graph has no output besides the codes to reconstruct with",
        ),
        (
            [tensor("y", ("n", 6))],
            ImportOptions(codes="y", reconstructions="y"),
            "codes: 'y' is the reconstruction too",
        ),
        (
            [tensor("y", ("n", 6), "tensor(string)")],
            ImportOptions(),
            "model: output 'y' is tensor(string)",
        ),
        ([tensor("y", ("n", 0))], ImportOptions(), "model: output 'y' has shape [n, 0]"),
    ],
)
def test_outputs_that_do_not_make_an_autoencoder(
    outputs: list[TensorInfo], options: ImportOptions, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_import([tensor("x", ("n", 6))], outputs, options, 6)
    assert caught.value.message.startswith(message)


def imported_json(**changes: Any) -> dict[str, Any]:
    data = sample_manifest_json()
    del data["training"]
    data.update(
        source="imported",
        latent_dim=None,
        graphs={
            k: v.model_dump() for k, v in default_graphs(("autoencoder",), codes=False).items()
        },
        imported={
            "file": "ae.onnx",
            "format": "onnx",
            "sha256": "0" * 64,
            "bytes": 10,
            "input": "x",
            "reconstructions": "y",
            "codes": None,
            "batch": "dynamic",
            "opset": 17,
            "rows_calibration": 3,
        },
    )
    data.update(changes)
    return data


def test_an_imported_manifest_may_lack_codes_encoder_and_decoder() -> None:
    manifest = ExportedManifest.model_validate(imported_json())
    assert (manifest.source, manifest.latent_dim, list(manifest.graphs)) == (
        "imported",
        None,
        ["autoencoder"],
    )
    # A version written before imports existed reads as trained.
    assert ExportedManifest.model_validate(sample_manifest_json()).source == "trained"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"imported": None}, "imported: an imported version needs its import summary"),
        ({"latent_dim": 2}, "the autoencoder graph must give `codes` exactly when latent_dim"),
        ({"source": "trained"}, "the encoder graph is missing"),
        (
            {"graphs": {k: v.model_dump() for k, v in default_graphs(codes=False).items()}},
            "latent_dim: an encoder graph needs the width of its codes",
        ),
    ],
)
def test_an_imported_manifest_still_keeps_the_contract(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ExportedManifest.model_validate(imported_json(**changes))


def test_the_store_refuses_a_file_over_the_limit_without_keeping_it(tmp_path: Any) -> None:
    store = ModelFileStore(tmp_path)
    with pytest.raises(PayloadTooLarge, match="larger than 2000000 bytes"):
        store.add(io.BytesIO(b"\x08" * 3_000_000), "big.onnx", 2_000_000)
    assert list(store.root.iterdir()) == []
    stored = store.add(io.BytesIO(b"\x08\x07"), "small.onnx", 2_000_000)
    assert (stored.format, stored.bytes, stored.new, stored.path.read_bytes()) == (
        "onnx",
        2,
        True,
        b"\x08\x07",
    )
    assert not store.add(io.BytesIO(b"\x08\x07"), "again.onnx", 2_000_000).new
