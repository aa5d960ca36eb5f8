"""Detection quality with the default config: a regression floor, not the benchmark.

The protocol of bench/quality.py on two small ADBench sets, one seed: train on half the normal
rows, score the other half and every anomaly. The floors sit well under the measured values
(docs/quality.md) so that only a real regression trips them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from core.config import TrainConfig
from models.graphs import ScoringGraph
from models.training import fit

FLOORS = {"6_cardio": 0.8, "38_thyroid": 0.85}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(FLOORS))
def test_default_config_detects_anomalies(adbench_dir: Path, dataset: str) -> None:
    with np.load(adbench_dir / f"{dataset}.npz") as archive:
        X, y = archive["X"].astype(np.float32), archive["y"].astype(int)
    normal = np.random.default_rng(0).permutation(np.flatnonzero(y == 0))
    half = len(normal) // 2
    test = np.concatenate([normal[half:], np.flatnonzero(y == 1)])

    result = fit(X[np.sort(normal[:half])], TrainConfig(device="cpu"))
    with torch.no_grad():
        _, _, scores, _ = ScoringGraph(
            result.model, result.scaling, result.config.loss, result.latent
        )(torch.from_numpy(X[test]))
    assert roc_auc_score(y[test], scores.numpy()) > FLOORS[dataset]
