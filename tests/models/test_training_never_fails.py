"""Training never fails on valid data: any finite rows train, export and pass the parity check.

Hypothesis draws the shapes the issue names (10 to 100,000 rows, 2 to 500 features, magnitudes
from 1e-3 to 1e5, constant and near-constant columns, duplicated rows) with the default config,
so the default score (the manifold one, models/scoring.py) is what is checked. The training is cut
to two short epochs: what can fail is the numerics of scaling, score constants and export, not
the length of the run.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.config import TrainConfig
from core.manifest import read_exported_manifest
from models.export import export_model
from models.training import fit

MAX_VALUES = 1_000_000
"""rows × features of one drawn data set at most (4 MB in float32), to keep the test fast."""


@st.composite
def datasets(draw: st.DrawFn) -> np.ndarray:
    rows = draw(st.one_of(st.integers(10, 300), st.integers(301, 100_000)))
    features = draw(st.integers(2, min(500, max(2, MAX_VALUES // rows))))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** draw(st.floats(-3, 5))
    X = rng.normal(size=(rows, features)) * magnitude * rng.uniform(0.1, 10, size=features)
    X += magnitude * draw(st.floats(-100, 100)) * rng.integers(0, 2, size=features)
    kinds = draw(st.lists(st.sampled_from(["plain", "constant", "near", "discrete"]), max_size=4))
    for column, kind in zip(rng.permutation(features), kinds, strict=False):
        if kind == "constant":
            X[:, column] = magnitude * 3.7
        elif kind == "near":  # one part in 10^7: below float32 resolution for most rows
            X[:, column] = magnitude * (1 + 1e-7 * rng.normal(size=rows))
        elif kind == "discrete":
            X[:, column] = magnitude * rng.integers(0, 3, size=rows)
    if draw(st.booleans()):  # duplicated rows: every row a copy of one of a few
        X = X[rng.integers(0, draw(st.integers(1, 5)), size=rows)]
    return X.astype(np.float32)


@pytest.mark.slow
@pytest.mark.timeout(900)  # about a minute alone; a loaded machine takes several
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(X=datasets())
@example(X=np.random.default_rng(1).normal(1e5, 1e4, size=(100_000, 10)).astype(np.float32))
@example(X=np.random.default_rng(2).normal(0, 1e-3, size=(10, 500)).astype(np.float32))
@example(X=np.full((50, 3), 7.0, dtype=np.float32))  # every row the same
def test_any_valid_data_trains_exports_and_passes_parity(X: np.ndarray) -> None:
    config = TrainConfig(device="cpu", epochs=2, max_rows_per_epoch=512, batch_size=128)
    result = fit(X, config)
    with TemporaryDirectory() as folder:
        manifest = export_model(result, Path(folder))  # raises ParityError on a mismatch
        assert read_exported_manifest(Path(folder)) == manifest
    assert manifest.config["score"] == "manifold"
    assert np.isfinite(manifest.threshold)
