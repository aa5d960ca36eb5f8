from __future__ import annotations

import numpy as np
import pytest

from models.scaling import fit_scaling

X = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, 2.0], [5.0, 5.0, 0.0]], dtype=np.float32)


def test_standard_uses_mean_and_std_and_keeps_constant_columns_finite() -> None:
    scaling = fit_scaling(X, "standard", "mse")
    np.testing.assert_allclose(scaling.offset, [3.0, 5.0, 0.0])
    np.testing.assert_allclose(scaling.scale, [np.sqrt(8 / 3), 1.0, np.sqrt(8 / 3)], rtol=1e-6)
    assert scaling.offset.dtype == scaling.scale.dtype == np.float32
    assert not scaling.clip
    np.testing.assert_allclose(scaling.apply(X).mean(axis=0), 0.0, atol=1e-6)


def test_minmax_maps_training_rows_onto_the_unit_interval() -> None:
    scaling = fit_scaling(X, "minmax", "mse")
    np.testing.assert_allclose(scaling.offset, [1.0, 5.0, -2.0])
    np.testing.assert_allclose(scaling.scale, [4.0, 1.0, 4.0])
    np.testing.assert_allclose(scaling.apply(X), [[0, 0, 0], [0.5, 0, 1], [1, 0, 0.5]])


def test_none_is_the_identity() -> None:
    scaling = fit_scaling(X, "none", "mse")
    np.testing.assert_array_equal(scaling.apply(X), X)


@pytest.mark.parametrize("method", ["standard", "minmax", "none"])
def test_bce_models_clip_to_the_unit_interval(method: str) -> None:
    scaling = fit_scaling(X, method, "bce")
    assert scaling.clip
    far = np.array([[100.0, -100.0, 100.0]], dtype=np.float32)
    assert scaling.apply(far).min() >= 0.0 and scaling.apply(far).max() <= 1.0


def test_invert_undoes_scaling() -> None:
    scaling = fit_scaling(X, "standard", "mse")
    np.testing.assert_allclose(scaling.invert(scaling.apply(X)), X, rtol=1e-6, atol=1e-6)


def test_to_manifest() -> None:
    assert fit_scaling(X, "minmax", "bce").to_manifest().model_dump() == {
        "method": "minmax",
        "offset": [1.0, 5.0, -2.0],
        "scale": [4.0, 1.0, 4.0],
        "clip": True,
    }
