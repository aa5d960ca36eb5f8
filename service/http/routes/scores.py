"""Score distributions of a version: its calibration histogram, and the scores it serves now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from core.manifest import ModelRef
from service.http.deps import AdminKey, MetricsDep, RepositoryDep
from service.http.schemas import ErrorResponse
from service.http.score_schemas import AnomalyRatePoint, CalibrationHistogram, TrafficSnapshot
from service.inference.calibration import version_calibration
from service.observability.drift import DRIFT_ALERT_PSI

router = APIRouter(prefix="/models", tags=["models"])

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
_KEYED_ERRORS: dict[int | str, dict[str, Any]] = {**_ERRORS, 401: {"model": ErrorResponse}}
VersionPath = Path(ge=1, description="Version number.")


@router.get(
    "/{name}/versions/{version}/calibration",
    response_model=CalibrationHistogram,
    responses=_KEYED_ERRORS,
    dependencies=[AdminKey],  # from the version's calibration rows: stored data
)
async def get_calibration(
    name: str, repository: RepositoryDep, version: int = VersionPath
) -> CalibrationHistogram:
    """Histogram of the calibration scores the threshold was taken from."""
    calibration = await run_in_threadpool(version_calibration, repository, name, version)
    return CalibrationHistogram(
        model=ModelRef(name=name, version=version),
        threshold=calibration.threshold,
        threshold_quantile=calibration.threshold_quantile,
        n=calibration.n,
        bin_edges=calibration.histogram.edges,
        counts=calibration.histogram.counts,
    )


@router.get("/{name}/versions/{version}/traffic", response_model=TrafficSnapshot, responses=_ERRORS)
async def get_traffic(
    name: str, repository: RepositoryDep, metrics: MetricsDep, version: int = VersionPath
) -> TrafficSnapshot:
    """Recent scores served by this process: histogram, anomaly rate over time and drift."""
    repository.version_dir(name, version)  # 404 for a version that does not exist
    snapshot = await run_in_threadpool(metrics.drift.snapshot, name, version)
    model = ModelRef(name=name, version=version)
    if snapshot is None:  # no traffic yet: the calibration's bins, all empty
        calibration = await run_in_threadpool(version_calibration, repository, name, version)
        return TrafficSnapshot(
            model=model,
            window_rows=0,
            psi=None,
            psi_alert=DRIFT_ALERT_PSI,
            share_above_threshold=None,
            expected_share_above_threshold=1.0 - calibration.threshold_quantile,
            bin_edges=calibration.histogram.edges,
            counts=[0] * len(calibration.histogram.counts),
            anomaly_rate=[],
        )
    return TrafficSnapshot(
        model=model,
        window_rows=snapshot.window_rows,
        psi=snapshot.psi,
        psi_alert=DRIFT_ALERT_PSI,
        share_above_threshold=snapshot.share_above_threshold,
        expected_share_above_threshold=snapshot.expected_share_above_threshold,
        bin_edges=snapshot.histogram_edges,
        counts=snapshot.histogram_counts,
        anomaly_rate=[
            AnomalyRatePoint(start=start, rows=rows, share_above_threshold=share)
            for start, rows, share in snapshot.anomaly_rate
        ],
    )
