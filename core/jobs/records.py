"""What a training job is: the spec it was submitted with and the record clients read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.importing import ModelFormat
from core.manifest import ModelRef

Fate = Literal["cancelled", "publishing", "lost"]
"""Set once per job, first writer wins: either a client cancels it, or it publishes, or the
backend gives it up. This is what keeps a cancelled job from publishing a version."""

INTERRUPTED = "interrupted: the process that ran this job stopped before it finished"

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def utc_now() -> datetime:
    return datetime.now(UTC)


JobKind = Literal["train", "import"]


class ModelFile(BaseModel):
    """A model file to import, stored by the API process (core/model_files.py)."""

    sha256: str
    format: ModelFormat
    file: str = Field(description="The name the client gave the file.")


class JobSpec(BaseModel):
    """A validated submission: everything the training process needs, and nothing large."""

    kind: JobKind = "train"
    name: str
    dataset: str = Field(description="Id of the stored dataset to train on, or to calibrate on.")
    config: dict[str, Any] = Field(
        description="TrainConfig fields as submitted; ImportOptions fields for an import."
    )
    model_file: ModelFile | None = Field(default=None, description="Only for an import.")
    promote: bool = False
    """Off by default everywhere; the repository makes a model's first version active anyway."""
    epochs: int = Field(description="Most epochs the run can take (config.epochs); 0 to import.")
    feature_names: list[str] | None = Field(
        default=None, description="One name per column, for the manifest; none if unnamed."
    )


class EpochLoss(BaseModel):
    epoch: int
    train_loss: float
    val_loss: float


class JobProgress(BaseModel):
    epoch: int = Field(default=0, description="Last finished epoch; 0 before the first.")
    epochs: int = Field(description="Most epochs; early stopping may end the run sooner.")
    train_loss: float | None = None
    val_loss: float | None = None


class JobResult(BaseModel):
    model: ModelRef
    promoted: bool = Field(description="Whether the new version is the active one.")
    epochs_run: int | None = Field(default=None, description="None for an import.")
    best_epoch: int | None = Field(default=None, description="None for an import.")
    val_loss: float | None = Field(default=None, description="None for an import.")
    threshold: float


class JobOutcome(BaseModel):
    """How a training process ended: the terminal part of a record."""

    status: JobStatus
    result: JobResult | None = None
    error: str | None = None


class JobRecord(BaseModel):
    job_id: str
    kind: JobKind = Field(default="train", description="Training a version, or importing one.")
    name: str = Field(description="Model the job trains (or imports) a new version of.")
    dataset: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress
    history: list[EpochLoss] = Field(default_factory=list)
    result: JobResult | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
