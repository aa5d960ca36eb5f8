"""The model repository on a real S3 API server (moto's, a separate process on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest

from core.errors import Conflict, CorruptVersion, ModelNotFound, VersionNotFound
from core.manifest import MANIFEST
from core.object_repository import ObjectStoreRepository
from core.object_store import StoreUnavailable
from core.repository import sha256_of
from core.settings import Settings
from core.storage import open_repository
from tests.core.test_repository import write_version
from tests.s3_server import CREDENTIALS, S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


def open_at(s3: S3Server, url: str, cache: Path) -> ObjectStoreRepository:
    settings = Settings(
        model_repository=url, cache_dir=cache, store_endpoint=s3.endpoint, store_timeout_s=1.0
    )
    repository = open_repository(settings)
    assert isinstance(repository, ObjectStoreRepository)
    return repository


@pytest.fixture
def url(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return f"s3://{s3.bucket()}/models"


@pytest.fixture
def repository(s3: S3Server, url: str, tmp_path: Path) -> ObjectStoreRepository:
    return open_at(s3, url, tmp_path / "host-a")


def publish(
    repository: ObjectStoreRepository,
    name: str = "m",
    promote: bool = False,
    payload: bytes = b"weights",
) -> int:
    with repository.staging() as staging:
        write_version(staging, payload)
        return repository.publish(name, staging, promote=promote)


def test_publish_list_and_load(repository: ObjectStoreRepository, tmp_path: Path):
    assert repository.names() == []
    assert publish(repository) == 1
    assert publish(repository, payload=b"other weights") == 2
    assert repository.names() == ["m"]
    assert repository.versions("m") == [1, 2]
    assert repository.active_version("m") == 1  # the first version is active, nothing else
    manifest = repository.manifest("m", 2)
    assert (manifest.name, manifest.version) == ("m", 2)
    folder = repository.verify("m", 2)
    assert folder.is_relative_to(tmp_path / "host-a")
    assert (folder / "autoencoder.onnx").read_bytes() == b"other weights"
    assert manifest.files["autoencoder.onnx"] == sha256_of(folder / "autoencoder.onnx")
    assert list((tmp_path / "host-a" / "models" / ".staging").iterdir()) == []


def test_another_host_sees_the_same_versions(s3: S3Server, url: str, tmp_path: Path):
    a, b = open_at(s3, url, tmp_path / "a"), open_at(s3, url, tmp_path / "b")
    publish(a)
    publish(b, promote=True)
    assert a.versions("m") == b.versions("m") == [1, 2]
    assert a.active_version("m") == 2
    assert (b.verify("m", 1) / "autoencoder.onnx").read_bytes() == b"weights"


def test_promote_verifies_then_points(repository: ObjectStoreRepository):
    publish(repository)
    publish(repository)
    repository.promote("m", 2)
    assert repository.active_version("m") == 2
    with pytest.raises(VersionNotFound):
        repository.promote("m", 7)
    with pytest.raises(ModelNotFound):
        repository.promote("absent", 1)
    assert repository.active_version("m") == 2


def test_a_file_changed_in_the_store_is_refused_after_download(
    repository: ObjectStoreRepository,
):
    publish(repository)
    publish(repository)
    obstore.put(repository.store, "m/2/autoencoder.onnx", b"tampered")
    with pytest.raises(CorruptVersion, match=r"autoencoder\.onnx does not match its sha256"):
        repository.promote("m", 2)
    assert repository.active_version("m") == 1
    assert not (repository.cache / "m" / "2").exists()  # nothing unchecked is kept


def test_a_version_without_its_manifest_is_invisible(repository: ObjectStoreRepository):
    publish(repository)
    # What a publisher that died before its manifest leaves behind: a claim and some files.
    obstore.put(repository.store, "m/2/.claim", b"")
    obstore.put(repository.store, "m/2/autoencoder.onnx", b"half")
    assert repository.versions("m") == [1]
    with pytest.raises(VersionNotFound):
        repository.verify("m", 2)
    assert publish(repository) == 3  # its number is never handed out again


def test_delete_keeps_the_number_and_refuses_the_active_version(
    repository: ObjectStoreRepository,
):
    publish(repository)
    publish(repository)
    folder = repository.verify("m", 2)
    with pytest.raises(Conflict, match="active version"):
        repository.delete("m", 1)
    repository.delete("m", 2)
    assert repository.versions("m") == [1]
    assert not folder.exists()
    with pytest.raises(VersionNotFound):
        repository.delete("m", 2)
    assert publish(repository) == 3


def test_concurrent_publishers_get_distinct_versions(s3: S3Server, url: str, tmp_path: Path):
    hosts = [open_at(s3, url, tmp_path / f"host-{i}") for i in range(4)]
    versions: list[int] = []
    threads = [threading.Thread(target=lambda h=h: versions.append(publish(h))) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [1, 2, 3, 4]
    assert hosts[0].versions("m") == [1, 2, 3, 4]


def test_of_two_promotions_that_raced_one_wins(s3: S3Server, url: str, tmp_path: Path):
    a, b = open_at(s3, url, tmp_path / "a"), open_at(s3, url, tmp_path / "b")
    for _ in range(3):
        publish(a)
    # Both read the pointer (v1), then both try to move it: the compare-and-swap lets one through.
    etag, active = a._pointer("m")
    assert active == 1
    a._swap_pointer("m", 2, etag, retry=False)
    with pytest.raises(Conflict, match="changed while v3 was being promoted"):
        b._swap_pointer("m", 3, etag, retry=False)
    assert a.active_version("m") == b.active_version("m") == 2
    assert obstore.get(a.store, f"m/{'active'}").bytes().to_bytes() == b"2\n"


def test_an_unreachable_store_fails_calls_and_says_so(s3: S3Server, url: str, tmp_path: Path):
    repository = open_at(s3, url, tmp_path / "a")
    publish(repository)
    folder = repository.verify("m", 1)
    s3.pause()
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            repository.active_version("m")
        with pytest.raises(StoreUnavailable):
            publish(repository)
        assert "unreachable" in (repository.unreachable() or "")
        assert (folder / MANIFEST).is_file()  # the local copy is still there to serve from
    finally:
        s3.resume()
    assert repository.active_version("m") == 1
    assert repository.unreachable() is None
