"""/datasets: training data too large for a JSON body, uploaded once and trained on by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, UploadFile

from service.deps import AdminKey
from service.jobs.datasets import DatasetInfo
from service.jobs.deps import DatasetsDep
from service.jobs.schemas import DatasetResponse
from service.schemas import ErrorResponse

router = APIRouter(prefix="/datasets", tags=["training"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 413, 422)
}


def _response(info: DatasetInfo) -> DatasetResponse:
    return DatasetResponse(dataset=info.dataset, rows=info.rows, dim=info.dim, sha256=info.sha256)


@router.post(
    "",
    status_code=201,
    response_model=DatasetResponse,
    responses=_ERRORS,
    dependencies=[AdminKey],
)
def upload_dataset(file: UploadFile, datasets: DatasetsDep) -> DatasetResponse:
    """Store a .csv, .npy, .npz or .parquet file of rows × features; use its id in POST /train."""
    return _response(datasets.add_file(file.file, file.filename or "upload"))


@router.get("/{dataset}", response_model=DatasetResponse, responses=_ERRORS)
def get_dataset(dataset: str, datasets: DatasetsDep) -> DatasetResponse:
    """Rows and dimension of a stored dataset."""
    return _response(datasets.info(dataset))
