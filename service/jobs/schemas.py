"""Request and response bodies of /train, /jobs and /datasets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from core.config import TrainConfig
from core.datasets import DATASET_ID
from core.jobs.records import JobRecord, JobStatus
from core.manifest import FeatureName
from core.repository import NAME_PATTERN
from core.rules import MIN_ROWS
from core.vectors import Rows

# The JSON schema says what the validator below requires: one of the two, not null.
_EXACTLY_ONE: JsonDict = {
    "oneOf": [
        {"required": ["vectors"], "properties": {"vectors": {"type": "array"}}},
        {"required": ["dataset"], "properties": {"dataset": {"type": "string"}}},
    ]
}


class TrainData(BaseModel):
    """Exactly one of `vectors` (inline rows) or `dataset` (an id from POST /datasets)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_EXACTLY_ONE)

    vectors: Rows | None = Field(
        default=None,
        description=f"Training rows, n × d: at least {MIN_ROWS}, all as wide.",
        json_schema_extra={"minItems": MIN_ROWS},  # checked by core/rules.py, with its message
    )
    dataset: str | None = Field(
        default=None,
        description="Id returned by POST /datasets.",
        json_schema_extra={"pattern": f"^{DATASET_ID.pattern}$"},  # else a 422 naming the id
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TrainData:
        if (self.vectors is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'vectors' or 'dataset'")
        return self


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Model to train a new version of.",
        examples=["cardio"],
        # Checked by core/repository.py's check_name, whose message says what a name may hold.
        json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
    )
    data: TrainData
    config: TrainConfig = Field(
        default_factory=TrainConfig, description="Training configuration; every field optional."
    )
    feature_names: list[FeatureName] | None = Field(
        default=None,
        description="One name per column of the data, kept in the manifest and used by "
        "`explain`. Defaults to the uploaded dataset's CSV header or parquet columns.",
        examples=[None],
    )
    promote: bool = Field(
        default=False,
        description=(
            "Make the new version the active one on success. Off by default, as in "
            "`aeserve train`: a new version waits for `POST /models/{name}/versions/{v}/promote`. "
            "A model's first version always becomes active, so a model is never left with "
            "nothing to serve."
        ),
    )


class TrainResponse(BaseModel):
    job_id: str
    status: JobStatus


class JobList(BaseModel):
    jobs: list[JobRecord] = Field(description="Newest first.")


class DatasetResponse(BaseModel):
    dataset: str = Field(description="Id to use as `data.dataset` in POST /train.")
    rows: int
    dim: int
    sha256: str = Field(description="Checksum of the stored float32 array (.npy).")
    feature_names: list[str] | None = Field(
        default=None, description="Column names from the file's CSV header or parquet schema."
    )
    filename: str | None = Field(default=None, description="The uploaded file's own name.")
    uploaded_at: datetime | None = Field(default=None, description="When it was stored (UTC).")
