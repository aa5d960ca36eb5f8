"""Responses of the score-distribution routes: calibration histogram and live traffic."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.manifest import ModelRef


class CalibrationHistogram(BaseModel):
    model: ModelRef
    threshold: float = Field(description="The version's threshold, from its manifest.")
    threshold_quantile: float = Field(description="The calibration quantile it is.")
    n: int = Field(description="Calibration scores counted.")
    bin_edges: list[float] = Field(description="Ascending edges, one more than the counts.")
    counts: list[int] = Field(description="Calibration scores per bin.")


class AnomalyRatePoint(BaseModel):
    start: float = Field(description="Start of the interval, unix seconds.")
    rows: int = Field(description="Scores served in the interval.")
    share_above_threshold: float


class TrafficSnapshot(BaseModel):
    model: ModelRef
    window_rows: int = Field(description="Recent scores in this process's drift window.")
    psi: float | None = Field(
        description="Population stability index against the calibration scores; null until the "
        "window holds enough scores. Above `psi_alert` traffic has drifted."
    )
    psi_alert: float
    share_above_threshold: float | None
    expected_share_above_threshold: float = Field(description="1 - threshold_quantile.")
    bin_edges: list[float] = Field(description="The calibration histogram's edges.")
    counts: list[int] = Field(description="Recent scores per bin.")
    anomaly_rate: list[AnomalyRatePoint] = Field(description="Oldest first.")
