"""A valid manifest without graphs behind it, for tests of the manifest and of the repository.

tests/tiny_model.py writes whole versions (real ONNX graphs); these tests need only the file.
"""

from __future__ import annotations

from typing import Any

from core.manifest import FORMAT, ExportedManifest, default_graphs


def sample_manifest_json(input_dim: int = 2) -> dict[str, Any]:
    """The manifest an exporter would write for a d=`input_dim`, k=1 model, as JSON data."""
    return {
        "format": FORMAT,
        "created_at": "2026-01-01T00:00:00+00:00",
        "input_dim": input_dim,
        "latent_dim": 1,
        "loss": "mse",
        "config": {"hidden_dims": [], "latent_dim": 1, "loss": "mse", "seed": 0},
        "scaling": {
            "method": "standard",
            "offset": [0.0] * input_dim,
            "scale": [1.0] * input_dim,
            "clip": False,
        },
        "threshold": 0.5,
        "threshold_quantile": 0.99,
        "calibration": {
            "file": "calibration.npy",
            "n": 3,
            "min": 0.1,
            "mean": 0.3,
            "median": 0.3,
            "p90": 0.46,
            "p99": 0.496,
            "max": 0.5,
        },
        "training": {
            "epochs_run": 1,
            "best_epoch": 1,
            "train_loss": 0.4,
            "val_loss": 0.3,
            "history": [{"epoch": 1, "train_loss": 0.4, "val_loss": 0.3}],
            "rows_train": 12,
            "rows_validation": 3,
            "seconds": 0.01,
            "device": "cpu",
        },
        "parity": {"max_abs_diff": 0.0, "rows": 3, "rtol": 1e-4, "atol": 1e-5},
        "graphs": {name: spec.model_dump() for name, spec in default_graphs().items()},
        "versions": {"aeserve": "0.1.0", "onnx": "1.19.0", "opset": 17},
    }


def sample_manifest(input_dim: int = 2) -> ExportedManifest:
    return ExportedManifest.model_validate(sample_manifest_json(input_dim))
