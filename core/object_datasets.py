"""Datasets in the object store beside the models, so a worker on any host trains on rows that
were uploaded to any API replica.

The store holds `<id>.npy` and `<id>.json` under the repository's `.datasets/` prefix, the
`.json` written last as on disk; the local folder is this process's copy. What is read back is
checked against the sha256 the `.json` records, as the folder store does.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.data import DataError
from core.datasets import DATASET_ID, DatasetInfo, DatasetNotFound, DatasetStore
from core.object_store import StoreUnavailable
from core.repository import sha256_of

if TYPE_CHECKING:
    from obstore.store import S3Store


class ObjectDatasetStore(DatasetStore):
    """`DatasetStore` whose rows live in the object store; `root` is the local copy."""

    def __init__(self, root: Path, store: S3Store, location: str, **options: Any) -> None:
        super().__init__(root, **options)
        self.store = store
        self.location = location

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except FileNotFoundError:
            raise
        except Exception as exc:
            message = str(exc).split("\n", 1)[0][:300]
            raise StoreUnavailable(
                f"the dataset store {self.location} did not answer ({what}): {message}"
            ) from exc

    def add_array(self, array: np.ndarray, *args: Any, **kwargs: Any) -> DatasetInfo:
        import obstore

        info = super().add_array(array, *args, **kwargs)  # the local copy, checksummed
        path = self._array_path(info.dataset)
        self._call("uploading rows", lambda: obstore.put(self.store, path.name, path))
        meta = info.model_dump_json().encode()
        self._call("uploading rows", lambda: obstore.put(self.store, f"{info.dataset}.json", meta))
        return info

    def info(self, dataset: str) -> DatasetInfo:
        import obstore

        if not DATASET_ID.fullmatch(dataset):
            raise DatasetNotFound(f"dataset {dataset!r} is not a dataset id (32 hex digits)")
        try:
            text = self._call(
                f"reading {dataset}",
                lambda: bytes(obstore.get(self.store, f"{dataset}.json").bytes()),
            )
        except FileNotFoundError:
            raise DatasetNotFound(
                f"dataset {dataset!r} does not exist; upload it with POST /datasets"
            ) from None
        return DatasetInfo.model_validate_json(text)

    def list(self) -> list[DatasetInfo]:
        import obstore

        def metas() -> list[Any]:
            return [meta for batch in obstore.list(self.store, None) for meta in batch]

        found = [
            meta
            for meta in self._call("listing datasets", metas)
            if meta["path"].endswith(".json") and DATASET_ID.fullmatch(meta["path"][:-5])
        ]
        found.sort(key=lambda meta: meta["last_modified"], reverse=True)
        return [self.info(meta["path"][:-5]) for meta in found]

    def touch(self, dataset: str) -> None:
        """The `.json` written again: its modification time is what the sweep reads."""
        import obstore

        meta = self.info(dataset).model_dump_json().encode()
        self._call("touching", lambda: obstore.put(self.store, f"{dataset}.json", meta))

    def untouched_since(self, cutoff: datetime) -> builtins.list[str]:
        import obstore

        def metas() -> list[Any]:
            return [meta for batch in obstore.list(self.store, None) for meta in batch]

        return [
            meta["path"][:-5]
            for meta in self._call("listing datasets", metas)
            if meta["path"].endswith(".json")
            and DATASET_ID.fullmatch(meta["path"][:-5])
            and meta["last_modified"] < cutoff
        ]

    def delete(self, dataset: str) -> DatasetInfo:
        import obstore

        info = self.info(dataset)
        self._call("deleting", lambda: obstore.delete(self.store, f"{dataset}.json"))
        self._call("deleting", lambda: obstore.delete(self.store, f"{dataset}.npy"))
        self._meta_path(dataset).unlink(missing_ok=True)
        self._array_path(dataset).unlink(missing_ok=True)
        return info

    def load(self, dataset: str) -> np.ndarray:
        """The rows, from the local copy when it matches the checksum, else downloaded."""
        import obstore

        info = self.info(dataset)
        path = self._array_path(dataset)
        if not path.is_file() or sha256_of(path) != info.sha256:
            try:
                data = self._call(
                    f"reading {dataset}",
                    lambda: bytes(obstore.get(self.store, f"{dataset}.npy").bytes()),
                )
            except FileNotFoundError:
                raise DataError(f"dataset {dataset!r} is missing its rows") from None
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return super().load(dataset)
