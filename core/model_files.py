"""Model files to import, at rest: stored once by sha256 beside the datasets, so a Celery worker
reads the very bytes the API process checked.

A file is copied in blocks and refused as soon as it passes the size limit, so an upload never
holds more than one block in memory or more than the limit on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import InvalidInput, NotFound, PayloadTooLarge
from core.importing import ModelFormat

MODEL_ID = re.compile(r"[0-9a-f]{64}")
FOLDER = ".models"
"""Model files live in this folder of the data folder (AESERVE_DATA_DIR), which Celery workers
share."""
SUFFIXES: dict[ModelFormat, str] = {"onnx": ".onnx", "torchscript": ".pt"}
_BLOCK = 1 << 20


@dataclass(frozen=True)
class StoredModel:
    sha256: str
    """Also its id in the store."""
    format: ModelFormat
    bytes: int
    path: Path
    new: bool
    """False when the same file was stored before (and may be in use by another job)."""


def sniff_format(head: bytes) -> ModelFormat:
    """A TorchScript module is a zip archive; anything else must be an ONNX protobuf."""
    return "torchscript" if head.startswith(b"PK\x03\x04") else "onnx"


class ModelFileStore:
    """`<data folder>/.models/<sha256>.onnx` or `.pt`."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / FOLDER

    def add(self, upload: BinaryIO, filename: str, max_bytes: int) -> StoredModel:
        """Store an uploaded model file of at most `max_bytes`; `PayloadTooLarge` past it."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".incoming-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with tmp.open("wb") as f:
                while block := upload.read(_BLOCK):
                    size += len(block)
                    if size > max_bytes:
                        raise PayloadTooLarge(
                            f"model: {filename!r} is larger than {max_bytes} bytes "
                            "(AESERVE_MAX_IMPORT_BYTES)"
                        )
                    head = head or block[:8]
                    digest.update(block)
                    f.write(block)
            if size == 0:
                raise InvalidInput(f"model: {filename!r} is empty")
            model_format = sniff_format(head)
            if model_format == "torchscript":
                _check_torchscript_archive(tmp, filename)
            sha256 = digest.hexdigest()
            path = self.path(sha256, model_format)
            new = not path.exists()
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredModel(sha256=sha256, format=model_format, bytes=size, path=path, new=new)

    def path(self, sha256: str, model_format: ModelFormat) -> Path:
        if not MODEL_ID.fullmatch(sha256):
            raise NotFound(f"model file {sha256!r} is not a sha256")
        return self.root / f"{sha256}{SUFFIXES[model_format]}"

    def delete(self, sha256: str, model_format: ModelFormat) -> None:
        self.path(sha256, model_format).unlink(missing_ok=True)


def _check_torchscript_archive(path: Path, filename: str) -> None:
    """What can be checked without torch: a readable zip holding a TorchScript `data.pkl`."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(
            f"model: {filename!r} is neither ONNX nor a readable zip: {exc}"
        ) from None
    if not any(name.endswith("/data.pkl") for name in names) or not any(
        "/code/" in name for name in names
    ):
        raise InvalidInput(
            f"model: {filename!r} is a zip archive but not a TorchScript module "
            "(torch.jit.save writes one holding data.pkl and code/)"
        )
