"""What the client returns: arrays for inference answers, pydantic models for the rest.

Jobs and manifests are core's own models (core/jobs/records.py, core/manifest.py), the ones the
server answers with. The other answers are read leniently (`extra="allow"`): a newer server's
fields reach the caller instead of failing the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from core.jobs.records import JobProgress, JobRecord, JobStatus
from core.manifest import ModelRef


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class VersionInfo(Answer):
    version: int
    created_at: str | None = None
    threshold: float | None = None
    active: bool
    input_dim: int | None = None
    latent_dim: int | None = None
    loss: str | None = None
    feature_names: list[str] | None = None


class ModelInfo(Answer):
    name: str
    versions: list[int]
    active_version: int | None
    input_dim: int | None = None
    latent_dim: int | None = None
    loss: str | None = None
    loaded_version: int | None = None
    feature_names: list[str] | None = None
    version_details: list[VersionInfo] = []


class Promoted(Answer):
    name: str
    active_version: int


class Dataset(Answer):
    dataset: str
    rows: int
    dim: int
    sha256: str
    feature_names: list[str] | None = None
    filename: str | None = None
    uploaded_at: datetime | None = None


class Submitted(Answer):
    """A queued job: follow it with `job`, `events` or `wait`."""

    job_id: str
    status: JobStatus


class Readiness(Answer):
    status: str
    detail: str


class CalibrationHistogram(Answer):
    model: ModelRef
    threshold: float
    threshold_quantile: float
    n: int
    bin_edges: list[float]
    counts: list[int]


class TrafficSnapshot(Answer):
    model: ModelRef
    window_rows: int
    psi: float | None
    share_above_threshold: float | None
    bin_edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class Rows:
    """An /encode, /decode or /reconstruct answer: the model that answered and an n × w array."""

    model: ModelRef
    array: npt.NDArray[np.float32]


@dataclass(frozen=True)
class TopFeature:
    feature: str
    index: int
    error: float


@dataclass(frozen=True)
class Scores:
    """A /score answer as arrays, whichever way it travelled (JSON or .npz)."""

    model: ModelRef
    scores: npt.NDArray[np.float32]
    """(n,) anomaly scores: the reconstruction loss of each row."""
    threshold: float
    anomalies: npt.NDArray[np.bool_]
    """(n,) scores > threshold."""
    p_values: npt.NDArray[np.float64]
    feature_errors: npt.NDArray[np.float32] | None = None
    """(n, d) with `explain`."""
    feature_names: list[str] | None = None
    """The name of each feature, with `explain` or `top`."""
    top_indices: npt.NDArray[np.int64] | None = None
    """(n, k) with `top`: each row's worst features, worst first."""
    top_errors: npt.NDArray[np.float32] | None = None

    def top_features(self) -> list[list[TopFeature]]:
        """Each row's `top` worst features by name, worst first ([] without `top`)."""
        if self.top_indices is None or self.top_errors is None:
            return []
        names = self.feature_names or [f"x{j}" for j in range(int(self.top_indices.max()) + 1)]
        return [
            [TopFeature(names[j], j, e) for j, e in zip(row, errors, strict=True)]
            for row, errors in zip(self.top_indices.tolist(), self.top_errors.tolist(), strict=True)
        ]


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: `progress` after an epoch, then `done`."""

    event: Literal["progress", "done"]
    id: int | None
    progress: JobProgress | None = None
    record: JobRecord | None = None


def scores_from_json(body: dict[str, Any]) -> Scores:
    top = body.get("top_features")
    top_indices = top_errors = None
    if top is not None:
        top_indices = np.asarray([[f["index"] for f in row] for row in top], dtype=np.int64)
        top_errors = np.asarray([[f["error"] for f in row] for row in top], dtype=np.float32)
    errors = body.get("feature_errors")
    return Scores(
        model=ModelRef.model_validate(body["model"]),
        scores=np.asarray(body["scores"], dtype=np.float32),
        threshold=float(body["threshold"]),
        anomalies=np.asarray(body["anomalies"], dtype=np.bool_),
        p_values=np.asarray(body["p_values"], dtype=np.float64),
        feature_errors=None if errors is None else np.asarray(errors, dtype=np.float32),
        feature_names=body.get("feature_names"),
        top_indices=top_indices,
        top_errors=top_errors,
    )


def scores_from_npz(model: ModelRef, arrays: dict[str, np.ndarray]) -> Scores:
    names = arrays.get("feature_names")
    return Scores(
        model=model,
        scores=arrays["scores"],
        threshold=float(arrays["threshold"]),
        anomalies=arrays["anomalies"],
        p_values=arrays["p_values"],
        feature_errors=arrays.get("feature_errors"),
        feature_names=None if names is None else [str(name) for name in names.tolist()],
        top_indices=arrays.get("top_indices"),
        top_errors=arrays.get("top_errors"),
    )
