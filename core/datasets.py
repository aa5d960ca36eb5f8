"""Training data at rest: uploaded files and inline vectors, stored once as float32 `.npy`.

A dataset's id is the start of the sha256 of its `.npy` file, so the same rows uploaded twice are
stored once, and the training process can check that it reads exactly what was validated. The
folder is shared with Celery workers, which is how large data reaches them without Redis.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import BaseModel, Field

from core import parquet
from core.data import SUFFIXES, DataError, load_table
from core.dataset_limits import DatasetLimits, DatasetTooLarge
from core.errors import InvalidInput, NotFound, UnsupportedMediaType
from core.repository import sha256_of
from core.rules import RuleViolation

DATASET_ID = re.compile(r"[0-9a-f]{32}")
_INCOMING = ".incoming"


class DatasetNotFound(NotFound):
    pass


class DataSummary(BaseModel):
    """What submit-time validation needs to know about data without reading it again."""

    rows: int
    dim: int
    minimum: list[float]
    maximum: list[float]

    @classmethod
    def of(cls, array: np.ndarray) -> DataSummary:
        return cls(
            rows=array.shape[0],
            dim=array.shape[1],
            minimum=array.min(axis=0).tolist(),
            maximum=array.max(axis=0).tolist(),
        )


class DatasetInfo(DataSummary):
    dataset: str
    sha256: str
    feature_names: list[str] | None = Field(
        default=None, description="The CSV header's or the parquet file's column names."
    )
    filename: str | None = Field(default=None, description="The uploaded file's own name.")
    uploaded_at: datetime | None = Field(default=None, description="When it was stored (UTC).")


class DatasetStore:
    """`<root>/<id>.npy` plus `<id>.json` (written last: a dataset without it does not exist).

    Uploads are refused (413) beyond `limits`, judged before their data is decoded.
    """

    def __init__(self, root: Path, limits: DatasetLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or DatasetLimits()

    def add_file(self, upload: BinaryIO, filename: str) -> DatasetInfo:
        """Store an uploaded .csv/.npy/.npz/.parquet file after reading it as a training array."""
        suffix = Path(filename).suffix.lower()
        if suffix not in SUFFIXES:
            raise InvalidInput(
                f"file {filename!r} has an unknown type; use one of {', '.join(SUFFIXES)}"
            )
        if suffix == ".parquet" and not parquet.available():
            raise UnsupportedMediaType(f"file {filename!r}: {parquet.MISSING}")
        incoming = self.root / _INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        path = incoming / f"{uuid.uuid4().hex}{suffix}"
        try:
            with path.open("wb") as f:
                shutil.copyfileobj(upload, f, 1 << 20)
            table = load_table(path, self.limits)
        # The messages name the temporary file; the client knows it by its own name.
        except DatasetTooLarge as exc:
            raise DatasetTooLarge(exc.message.replace(str(path), filename)) from None
        except (DataError, RuleViolation) as exc:
            raise InvalidInput(str(exc).replace(str(path), filename)) from None
        finally:
            path.unlink(missing_ok=True)
        return self.add_array(table.array, table.feature_names, filename)

    def add_array(
        self,
        array: np.ndarray,
        feature_names: list[str] | None = None,
        filename: str | None = None,
    ) -> DatasetInfo:
        """Store a finite float32 n × d array; return its id and summary."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / _INCOMING / f"{uuid.uuid4().hex}.npy"
        tmp.parent.mkdir(exist_ok=True)
        np.save(tmp, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        digest = sha256_of(tmp)
        dataset = digest[:32]
        os.replace(tmp, self._array_path(dataset))
        info = DatasetInfo(
            dataset=dataset,
            sha256=digest,
            feature_names=feature_names,
            filename=filename,
            uploaded_at=datetime.now(UTC).replace(microsecond=0),
            **DataSummary.of(array).model_dump(),
        )
        meta = self._meta_path(dataset)
        meta_tmp = meta.with_name(f".{meta.name}.{uuid.uuid4().hex}")
        meta_tmp.write_text(info.model_dump_json())
        os.replace(meta_tmp, meta)
        return info

    def info(self, dataset: str) -> DatasetInfo:
        if not DATASET_ID.fullmatch(dataset):
            raise DatasetNotFound(f"dataset {dataset!r} is not a dataset id (32 hex digits)")
        try:
            text = self._meta_path(dataset).read_text()
        except FileNotFoundError:
            raise DatasetNotFound(
                f"dataset {dataset!r} does not exist; upload it with POST /datasets"
            ) from None
        return DatasetInfo.model_validate_json(text)

    def list(self) -> list[DatasetInfo]:
        """Every stored dataset, the newest first."""
        if not self.root.is_dir():
            return []
        metas = [path for path in self.root.glob("*.json") if DATASET_ID.fullmatch(path.stem)]
        metas.sort(key=lambda path: path.stat().st_mtime, reverse=True)
        return [DatasetInfo.model_validate_json(path.read_text()) for path in metas]

    def touch(self, dataset: str) -> None:
        """Mark the dataset as used now (a job was submitted on it), for the retention sweep;
        DatasetNotFound if it is gone."""
        self.info(dataset)
        try:
            os.utime(self._meta_path(dataset))
        except FileNotFoundError:
            raise DatasetNotFound(f"dataset {dataset!r} does not exist") from None

    def untouched_since(self, cutoff: datetime) -> builtins.list[str]:
        """Datasets neither stored nor trained on since `cutoff`."""
        if not self.root.is_dir():
            return []
        limit = cutoff.timestamp()
        return [
            path.stem
            for path in self.root.glob("*.json")
            if DATASET_ID.fullmatch(path.stem) and path.stat().st_mtime < limit
        ]

    def delete(self, dataset: str) -> DatasetInfo:
        """Remove a dataset: its `.json` first, so it stops existing before its rows go."""
        info = self.info(dataset)
        self._meta_path(dataset).unlink(missing_ok=True)
        self._array_path(dataset).unlink(missing_ok=True)
        return info

    def load(self, dataset: str) -> np.ndarray:
        """The stored array, after checking the file still matches its checksum."""
        info = self.info(dataset)
        path = self._array_path(dataset)
        if not path.is_file() or sha256_of(path) != info.sha256:
            raise DataError(f"dataset {dataset!r} is missing or does not match its checksum")
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array

    def _array_path(self, dataset: str) -> Path:
        return self.root / f"{dataset}.npy"

    def _meta_path(self, dataset: str) -> Path:
        return self.root / f"{dataset}.json"
