"""The model repository: atomic publishing, distinct versions under concurrency, checksums."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import Conflict, CorruptVersion, InvalidInput, ModelNotFound, VersionNotFound
from core.manifest import MANIFEST, write_manifest
from core.repository import ModelRepository, sha256_of
from tests.core.manifests import sample_manifest, sample_manifest_json


def write_version(folder: Path, payload: bytes = b"weights") -> None:
    (folder / "autoencoder.onnx").write_bytes(payload)
    (folder / "calibration.npy").write_bytes(b"scores")
    write_manifest(sample_manifest(), folder)


def publish(repository: ModelRepository, name: str = "m", promote: bool = False) -> int:
    with repository.staging() as staging:
        write_version(staging)
        return repository.publish(name, staging, promote=promote)


def visible_versions(root: Path, name: str = "m") -> list[str]:
    folder = root / name
    return sorted(p.name for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def test_publish_numbers_versions_and_fills_the_manifest(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    assert publish(repository) == 1
    assert publish(repository) == 2
    manifest = repository.manifest("m", 2)
    assert manifest.name == "m"
    assert manifest.version == 2
    folder = repository.version_dir("m", 2)
    assert manifest.files == {
        "autoencoder.onnx": sha256_of(folder / "autoencoder.onnx"),
        "calibration.npy": sha256_of(folder / "calibration.npy"),
    }
    assert repository.versions("m") == [1, 2]
    assert list((tmp_path / ".staging").iterdir()) == []


def test_the_first_version_is_active_and_promote_switches(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    publish(repository)
    assert repository.active_version("m") == 1
    repository.promote("m", 2)
    assert repository.active_version("m") == 2
    publish(repository, promote=True)
    assert repository.active_version("m") == 3


def test_deleted_version_numbers_are_never_reused(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    publish(repository)
    repository.delete("m", 2)
    assert repository.versions("m") == [1]
    assert publish(repository) == 3


def test_delete_refuses_the_active_version(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    with pytest.raises(Conflict, match="is the active version"):
        repository.delete("m", 1)


def test_unknown_names_and_versions(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    with pytest.raises(ModelNotFound, match="model 'x' not found"):
        repository.versions("x")
    with pytest.raises(ModelNotFound):
        repository.versions("../etc")
    with pytest.raises(VersionNotFound, match="model 'm' has no version 5"):
        repository.promote("m", 5)
    with (
        pytest.raises(InvalidInput, match="model name 'Bad' is invalid"),
        repository.staging() as s,
    ):
        write_version(s)
        repository.publish("Bad", s)


def test_checksum_mismatch_is_refused(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    assert repository.verify("m", 1) == tmp_path / "m" / "1"
    (tmp_path / "m" / "1" / "autoencoder.onnx").write_bytes(b"tampered")
    with pytest.raises(CorruptVersion) as raised:
        repository.verify("m", 1)
    assert (
        raised.value.message == "model 'm' v1: autoencoder.onnx does not match its sha256 checksum"
    )
    (tmp_path / "m" / "1" / "calibration.npy").unlink()
    (tmp_path / "m" / "1" / "autoencoder.onnx").write_bytes(b"weights")
    with pytest.raises(CorruptVersion, match=r"calibration\.npy is missing"):
        repository.verify("m", 1)


def _publish_one(root: str) -> int:
    return publish(ModelRepository(Path(root)))


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_publish_one, [str(tmp_path)] * 12)
    assert sorted(versions) == list(range(1, 13))
    assert ModelRepository(tmp_path).versions("m") == list(range(1, 13))


_KILLED_PUBLISHER = """
import os, sys, time
from pathlib import Path
from core.repository import ModelRepository
import core.repository as repo_module

stage = sys.argv[2]
repository = ModelRepository(Path(sys.argv[1]))
with repository.staging() as staging:
    (staging / "autoencoder.onnx").write_bytes(b"w" * 1000)
    if stage == "writing":
        print("ready", flush=True); time.sleep(60)
    from tests.core.manifests import sample_manifest
    from core.manifest import write_manifest
    write_manifest(sample_manifest(), staging)
    def stalled_rename(src, dst):
        print("ready", flush=True); time.sleep(60)
    repo_module.os.rename = stalled_rename
    repository.publish("m", staging)
"""


@pytest.mark.parametrize("stage", ["writing", "renaming"])
def test_a_publisher_killed_midway_leaves_nothing_visible(tmp_path: Path, stage: str):
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PUBLISHER, str(tmp_path), stage],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    repository = ModelRepository(tmp_path)
    assert visible_versions(tmp_path) == []
    assert repository.names() in ([], ["m"])
    # The next publisher is not confused by the debris, and a sweep clears it.
    time.sleep(0.05)
    assert publish(repository) == 1
    assert repository.active_version("m") == 1
    assert len(list((tmp_path / ".staging").iterdir())) == 1
    assert repository.sweep_staging(older_than_s=3600) == 0
    assert repository.sweep_staging(older_than_s=0) == 1
    assert list((tmp_path / ".staging").iterdir()) == []


def test_importing_the_repository_leaves_torch_out():
    code = "import core.repository, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_publish_keeps_the_exporters_fields_as_written(tmp_path: Path):
    """The repository adds name, version and files; it neither drops nor fills in a field."""
    repository = ModelRepository(tmp_path)
    written = sample_manifest_json()
    written["drift_baseline"] = {"psi": [0.1]}  # a field of a newer exporter
    del written["training"]["device"]  # an optional field left out
    with repository.staging() as staging:
        (staging / "calibration.npy").write_bytes(b"scores")
        (staging / MANIFEST).write_text(json.dumps(written))
        version = repository.publish("m", staging)
    published = json.loads((repository.version_dir("m", version) / MANIFEST).read_text())
    files = {"calibration.npy": sha256_of(tmp_path / "m" / "1" / "calibration.npy")}
    assert published == {**written, "name": "m", "version": 1, "files": files}
    assert repository.manifest("m", 1).model_extra == {"drift_baseline": {"psi": [0.1]}}


def test_a_staging_folder_with_an_invalid_manifest_is_not_published(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    with repository.staging() as staging:
        (staging / MANIFEST).write_text(json.dumps({**sample_manifest_json(), "latent_dim": 0}))
        with pytest.raises(CorruptVersion, match=r"manifest\.json: latent_dim: Input should be"):
            repository.publish("m", staging)
    assert repository.names() == []


def test_promote_re_hashes_the_files_before_it_moves_the_pointer(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    publish(repository)
    (repository.version_dir("m", 2) / "autoencoder.onnx").write_bytes(b"weightz")
    with pytest.raises(CorruptVersion, match=r"autoencoder\.onnx does not match its sha256"):
        repository.promote("m", 2)
    assert repository.active_version("m") == 1


def test_a_lookup_of_an_unknown_model_leaves_no_folder(tmp_path: Path):
    repository = ModelRepository(tmp_path)
    publish(repository)
    with pytest.raises(ModelNotFound, match="model 'ghost' not found"):
        repository.delete("ghost", 1)
    with pytest.raises(ModelNotFound, match="model 'ghost' not found"):
        repository.promote("ghost", 1)
    assert repository.names() == ["m"]
    assert not (tmp_path / "ghost").exists()
