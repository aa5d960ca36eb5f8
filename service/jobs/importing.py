"""Submit-time checks of an import: a file that cannot be served as an autoencoder is a 4xx now,
not a failed job. The API process reads the graph with onnxruntime only (never torch, never
onnx): optimisations off, and alone in a folder, so a hostile file can neither make it fold
constants into memory nor point it at files of the server as external weights. A TorchScript
module can only be checked as an archive here; the job converts it and checks the rest.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnxruntime as ort

from core import rules
from core.datasets import DatasetInfo, DatasetNotFound, DatasetStore
from core.errors import InvalidInput
from core.importing import ImportOptions, plan_import, tensors_of
from core.jobs.records import JobSpec, ModelFile
from core.model_files import ModelFileStore, StoredModel
from core.repository import Repository, check_name
from service.jobs.submission import check_dimension


@contextmanager
def alone(path: Path) -> Iterator[Path]:
    """The file, linked into an empty folder of its own for as long as onnxruntime reads it.

    onnxruntime reads a graph's external weights from files named inside it, relative to the
    graph's folder (or the working directory, for a graph given as bytes), and refuses names
    that leave that folder. In an empty folder every such name is refused.
    """
    folder = path.parent / f".check-{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        alone = folder / "model.onnx"
        try:
            os.link(path, alone)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, alone)
        yield alone
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class ImportUpload:
    """What a client sends to import a model: the file, and calibration rows or a dataset id."""

    name: str
    model: BinaryIO
    model_filename: str
    options: ImportOptions
    promote: bool = False
    calibration: BinaryIO | None = None
    calibration_filename: str = "calibration"
    dataset: str | None = None


def prepare_import(
    upload: ImportUpload,
    datasets: DatasetStore,
    model_files: ModelFileStore,
    repository: Repository,
    max_bytes: int,
) -> JobSpec:
    """Check the request, store its files; the spec names both by their sha256."""
    name = check_name(upload.name)
    if (upload.calibration is None) == (upload.dataset is None):
        raise InvalidInput("give exactly one of 'calibration' (a file of rows) or 'dataset'")
    options = upload.options
    if options.loss == "bce" and options.scaling == "standard":
        raise InvalidInput(
            "scaling: bce needs rows in [0, 1]; standard scaling does not keep them there "
            "(use minmax or none)"
        )
    info = _calibration(upload, datasets)
    rules.check_min_rows(info.rows)
    check_dimension(name, info.dim, repository)
    if options.loss == "bce" and options.scaling == "none":
        rules.check_bce_range(info.minimum, info.maximum, "none", where="calibration")
    stored = model_files.add(upload.model, upload.model_filename, max_bytes)
    if stored.format == "onnx":
        try:
            check_onnx(stored, options, info.dim)
        except InvalidInput:
            if stored.new:  # a refused file takes no disk space
                stored.path.unlink(missing_ok=True)
            raise
    return JobSpec(
        kind="import",
        name=name,
        dataset=info.dataset,
        config=options.model_dump(mode="json"),
        model_file=ModelFile(
            sha256=stored.sha256, format=stored.format, file=upload.model_filename
        ),
        promote=upload.promote,
        epochs=0,
    )


def _calibration(upload: ImportUpload, datasets: DatasetStore) -> DatasetInfo:
    if upload.dataset is not None:
        try:
            return datasets.info(upload.dataset)
        except DatasetNotFound as exc:
            raise InvalidInput(f"dataset: {exc.message}") from None
    assert upload.calibration is not None
    return datasets.add_file(upload.calibration, upload.calibration_filename)


def check_onnx(stored: StoredModel, options: ImportOptions, width: int) -> None:
    """What onnxruntime says of the graph without running it: loadable (opset, operators), and
    an autoencoder by its signature (core/importing.py)."""
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session_options.intra_op_num_threads = 1
    try:
        with alone(stored.path) as path:
            session = ort.InferenceSession(
                str(path), session_options, providers=["CPUExecutionProvider"]
            )
    except Exception as exc:  # onnxruntime's errors share no base class below Exception
        raise InvalidInput(f"model: onnxruntime {ort.__version__} cannot load it: {exc}") from None
    plan_import(tensors_of(session.get_inputs()), tensors_of(session.get_outputs()), options, width)
