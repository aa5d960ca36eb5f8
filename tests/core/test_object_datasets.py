"""Datasets in the object store: uploaded through one host, read on another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import obstore
import pytest

from core.data import DataError
from core.datasets import DatasetNotFound
from core.object_datasets import ObjectDatasetStore
from core.settings import Settings
from core.storage import open_datasets
from tests.s3_server import CREDENTIALS, S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def hosts(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ObjectDatasetStore, ObjectDatasetStore]:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{s3.bucket()}/models"
    stores = []
    for host in ("a", "b"):
        settings = Settings(
            model_repository=url, cache_dir=tmp_path / host, store_endpoint=s3.endpoint
        )
        store = open_datasets(settings)
        assert isinstance(store, ObjectDatasetStore)
        stores.append(store)
    return stores[0], stores[1]


def test_rows_uploaded_to_one_host_load_on_another(
    hosts: tuple[ObjectDatasetStore, ObjectDatasetStore],
):
    a, b = hosts
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    info = a.add_array(rows)
    assert b.info(info.dataset) == info
    assert [d.dataset for d in b.list()] == [info.dataset]
    np.testing.assert_array_equal(b.load(info.dataset), rows)
    b.delete(info.dataset)
    with pytest.raises(DatasetNotFound):
        a.info(info.dataset)


def test_rows_changed_in_the_store_are_refused(
    hosts: tuple[ObjectDatasetStore, ObjectDatasetStore],
):
    a, b = hosts
    info = a.add_array(np.ones((4, 3), dtype=np.float32))
    buffer = Path(b.root)
    buffer.mkdir(parents=True, exist_ok=True)
    np.save(buffer / "other.npy", np.zeros((4, 3), dtype=np.float32))
    obstore.put(b.store, f"{info.dataset}.npy", (buffer / "other.npy").read_bytes())
    with pytest.raises(DataError, match="does not match its checksum"):
        b.load(info.dataset)
