"""The calibration file and the manifest of a version, built as core.manifest's typed model.

The repository adds `name`, `version` and `files` when it publishes; everything else is here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

import core
from core.manifest import (
    CALIBRATION,
    FORMAT,
    CalibrationSummary,
    EpochLoss,
    ExportedManifest,
    ParityCheck,
    ToolVersions,
    TrainingSummary,
    default_graphs,
)
from models.training import TrainResult

OPSET = 17
TORCHSCRIPT = "autoencoder.pt"


def write_calibration(scores: np.ndarray, directory: Path) -> np.ndarray:
    """Save held-out scores sorted ascending (float32): p-values then need one binary search."""
    calibration = np.sort(np.asarray(scores, dtype=np.float32))
    np.save(directory / CALIBRATION, calibration)
    return calibration


def calibration_summary(calibration: np.ndarray) -> CalibrationSummary:
    values = calibration.astype(np.float64)
    return CalibrationSummary(
        file=CALIBRATION,
        n=int(values.size),
        min=float(values.min()),
        mean=float(values.mean()),
        median=float(np.median(values)),
        p90=float(np.quantile(values, 0.9)),
        p99=float(np.quantile(values, 0.99)),
        max=float(values.max()),
    )


def build_manifest(
    result: TrainResult,
    calibration: np.ndarray,
    parity: ParityCheck,
    feature_names: list[str] | None = None,
) -> ExportedManifest:
    config = result.config
    best = result.best
    manifest = ExportedManifest(
        format=FORMAT,
        created_at=datetime.now(UTC).replace(microsecond=0),
        input_dim=result.model.input_dim,
        latent_dim=result.model.latent_dim,
        loss=config.loss,
        config=config.model_dump(mode="json"),
        scaling=result.scaling.to_manifest(),
        # Linear interpolation, numpy's default: the same value a reader gets from the file.
        threshold=float(np.quantile(calibration, config.threshold_quantile)),
        threshold_quantile=config.threshold_quantile,
        calibration=calibration_summary(calibration),
        training=TrainingSummary(
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            train_loss=best.train_loss,
            val_loss=best.val_loss,
            history=[
                EpochLoss(epoch=e.epoch, train_loss=e.train_loss, val_loss=e.val_loss)
                for e in result.history
            ],
            rows_train=result.rows_train,
            rows_validation=len(result.validation_rows),
            seconds=round(result.seconds, 3),
            device=result.device,
        ),
        parity=parity,
        graphs=default_graphs(),
        versions=ToolVersions(
            aeserve=core.__version__,
            torch=torch.__version__,
            onnx=onnx.__version__,
            onnxruntime=onnxruntime.__version__,
            opset=OPSET,
        ),
    )
    if feature_names is None:  # left unset: a manifest without names reads as before
        return manifest
    return ExportedManifest.model_validate(
        {**manifest.model_dump(exclude_unset=True), "feature_names": list(feature_names)}
    )
