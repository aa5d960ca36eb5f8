"""/datasets: training data too large for a JSON body, uploaded once and trained on by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, UploadFile

from core.datasets import DatasetInfo
from core.rules import MIN_ROWS
from service.http.deps import AdminKey, DatasetsDep, JobsDep
from service.http.schemas import ErrorResponse
from service.jobs.dataset_use import delete_unused
from service.jobs.schemas import DatasetResponse

router = APIRouter(prefix="/datasets", tags=["training"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 404, 409, 413, 422)
}
_EXAMPLE_ROWS = [[(3 * i + 7 * j) % 11 / 10 for j in range(4)] for i in range(MIN_ROWS)]
_EXAMPLE_CSV = "f0,f1,f2,f3\n" + "".join(",".join(map(str, row)) + "\n" for row in _EXAMPLE_ROWS)
# The file's name says how to read it: its suffix picks the reader (.csv, .npy, .npz, .parquet).
_UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "encoding": {
                    "file": {
                        "headers": {
                            "Content-Disposition": {
                                "description": "The file's name ends in .csv, .npy, .npz or "
                                ".parquet: the suffix says how the file is read.",
                                "schema": {"type": "string"},
                                "example": 'form-data; name="file"; filename="rows.csv"',
                            }
                        }
                    }
                },
                "examples": {
                    "csv": {
                        "summary": f"A .csv file: a header, then {MIN_ROWS} rows of 4 values",
                        "value": {"file": _EXAMPLE_CSV},
                    }
                },
            }
        }
    }
}


def _response(info: DatasetInfo) -> DatasetResponse:
    return DatasetResponse(
        dataset=info.dataset,
        rows=info.rows,
        dim=info.dim,
        sha256=info.sha256,
        feature_names=info.feature_names,
        filename=info.filename,
        uploaded_at=info.uploaded_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=DatasetResponse,
    responses=_ERRORS,
    dependencies=[AdminKey],
    openapi_extra=_UPLOAD_BODY,
)
def upload_dataset(file: UploadFile, datasets: DatasetsDep) -> DatasetResponse:
    """Store a .csv, .npy, .npz or .parquet file of rows × features; use its id in POST /train."""
    return _response(datasets.add_file(file.file, file.filename or "upload"))


@router.get("", response_model=list[DatasetResponse], responses=_ERRORS, dependencies=[AdminKey])
def list_datasets(datasets: DatasetsDep) -> list[DatasetResponse]:
    """Every stored dataset, the newest first."""
    return [_response(info) for info in datasets.list()]


@router.get(
    "/{dataset}", response_model=DatasetResponse, responses=_ERRORS, dependencies=[AdminKey]
)
def get_dataset(dataset: str, datasets: DatasetsDep) -> DatasetResponse:
    """Rows and dimension of a stored dataset."""
    return _response(datasets.info(dataset))


@router.delete(
    "/{dataset}", response_model=DatasetResponse, responses=_ERRORS, dependencies=[AdminKey]
)
def delete_dataset(dataset: str, datasets: DatasetsDep, jobs: JobsDep) -> DatasetResponse:
    """Remove a dataset and its rows; refused (409) while a queued or running job trains on it."""
    return _response(delete_unused(dataset, jobs, datasets))  # 404 if there is no such dataset
