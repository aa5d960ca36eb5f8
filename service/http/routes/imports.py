"""/import: serve an autoencoder trained elsewhere, imported by a job as /train trains one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from core.config import Loss
from core.datasets import DATASET_ID
from core.importing import ImportOptions, ImportScaling
from core.model_files import ModelFileStore
from core.repository import NAME_PATTERN
from service.http.deps import AdminKey, DatasetsDep, JobsDep, RepositoryDep, SettingsDep
from service.http.schemas import ErrorResponse
from service.jobs.dataset_use import record_job
from service.jobs.importing import ImportUpload, prepare_import
from service.jobs.schemas import TrainResponse

router = APIRouter(tags=["training"])

_FIELDS = ImportOptions.model_fields


def _about(field: str) -> str:
    return _FIELDS[field].description or ""


@router.post(
    "/import",
    status_code=202,
    response_model=TrainResponse,
    responses={status: {"model": ErrorResponse} for status in (401, 409, 413, 422)},
    dependencies=[AdminKey],
)
def import_model(
    response: Response,
    jobs: JobsDep,
    datasets: DatasetsDep,
    repository: RepositoryDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The ONNX file or TorchScript module.")],
    name: Annotated[
        str,
        Form(
            description="Model to import a new version of.",
            # Checked by core/repository.py's check_name, whose message says what a name may hold.
            json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
        ),
    ],
    calibration: Annotated[
        UploadFile | None,
        File(description="Normal rows (.csv, .npy, .npz, .parquet): threshold and p-values."),
    ] = None,
    dataset: Annotated[
        str | None,
        Form(
            description="Or the id of stored normal rows (POST /datasets).",
            json_schema_extra={"pattern": f"^{DATASET_ID.pattern}$"},
        ),
    ] = None,
    scaling: Annotated[ImportScaling, Form(description=_about("scaling"))] = "none",
    loss: Annotated[Loss, Form(description=_about("loss"))] = "mse",
    codes: Annotated[str | None, Form(description=_about("codes"))] = None,
    reconstructions: Annotated[str | None, Form(description=_about("reconstructions"))] = None,
    threshold_quantile: Annotated[
        float, Form(gt=0, lt=1, description=_about("threshold_quantile"))
    ] = 0.99,
    promote: Annotated[bool, Form(description="Make the new version the active one.")] = False,
) -> Any:
    """Queue a job that wraps the model into aeserve's graphs, calibrates its threshold on the
    normal rows and publishes it as a new version of `name`; follow it at `Location`."""
    upload = ImportUpload(
        name=name,
        model=file.file,
        model_filename=file.filename or "model",
        options=ImportOptions(
            scaling=scaling,
            loss=loss,
            codes=codes or None,
            reconstructions=reconstructions or None,
            threshold_quantile=threshold_quantile,
        ),
        promote=promote,
        calibration=calibration.file if calibration is not None else None,
        calibration_filename=(calibration.filename or "calibration") if calibration else "",
        dataset=dataset or None,
    )
    spec = prepare_import(
        upload,
        datasets,
        ModelFileStore(settings.datasets_path),
        repository,
        settings.max_import_bytes,
    )
    record = record_job(spec, jobs, datasets)  # under the dataset's lock, as POST /train
    response.headers["Location"] = f"/jobs/{record.job_id}"
    return TrainResponse(job_id=record.job_id, status=record.status)
