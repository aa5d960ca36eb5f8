"""AutoencoderDetector: PyOD's interface over a real server, usable with roc_auc_score and in a
scikit-learn Pipeline, and scikit-learn's estimator checks.

Two checks are expected to fail, by design (README, "A Python client"): check_outliers_train and
check_outliers_fit_predict want scikit-learn's labels (-1 outlier, +1 inlier), and the detector
keeps PyOD's (1 outlier, 0 inlier). Each fit trains a real version, so the checks take minutes.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from service.client.estimator import AutoencoderDetector
from tests.service.client.conftest import API_KEY, Server

pytestmark = pytest.mark.slow

PYOD_LABELS = "PyOD's labels: predict gives 1 for an outlier and 0 for an inlier, not -1/+1"
EXPECTED_FAILURES = {
    "check_outliers_train": PYOD_LABELS,
    "check_outliers_fit_predict": PYOD_LABELS,
}


def correlated(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 2)) @ rng.normal(size=(2, 8))
    return signal + 0.05 * rng.normal(size=(n, 8))


def test_fit_score_predict_with_pyod_attributes(server: Server) -> None:
    normal = correlated(300, 0)
    detector = AutoencoderDetector(
        url=server.url, api_key=API_KEY, contamination=0.05, config={"epochs": 60}
    ).fit(normal)
    assert detector.decision_scores_.shape == (300,)
    assert detector.threshold_ == pytest.approx(np.quantile(detector.decision_scores_, 0.95))
    assert detector.labels_.sum() == int((detector.decision_scores_ > detector.threshold_).sum())
    assert detector.n_features_in_ == 8

    test_normal = correlated(100, 1)
    outliers = np.random.default_rng(2).normal(0, 3, size=(20, 8))  # off the 2-D signal
    X = np.vstack([test_normal, outliers])
    y = np.r_[np.zeros(100), np.ones(20)]
    assert roc_auc_score(y, detector.decision_function(X)) > 0.9
    assert set(detector.predict(X).tolist()) <= {0, 1}
    assert detector.predict(outliers).mean() > 0.5
    for method in ("linear", "conformal"):
        proba = detector.predict_proba(X, method=method)
        assert proba.shape == (120, 2)
        assert np.allclose(proba.sum(axis=1), 1.0) and ((proba >= 0) & (proba <= 1)).all()
    assert np.array_equal(detector.score_samples(X), -detector.decision_function(X))


def test_in_a_pipeline(server: Server) -> None:
    X = correlated(200, 3) * 100 + 50  # far from unit scale: the pipeline's scaler handles it
    pipeline = make_pipeline(
        StandardScaler(), AutoencoderDetector(url=server.url, api_key=API_KEY, config={"epochs": 5})
    )
    pipeline.fit(X)
    scores = pipeline.decision_function(X)
    assert scores.shape == (200,)
    assert np.array_equal(pipeline.predict(X), (scores > pipeline[-1].threshold_).astype(int))


def test_large_training_data_goes_as_a_dataset(server: Server) -> None:
    X = correlated(100, 4)
    detector = AutoencoderDetector(
        url=server.url, api_key=API_KEY, config={"epochs": 2}, upload_above=100
    ).fit(X)
    job = detector._client().job(detector.job_id_)
    assert len(job.dataset) == 32
    assert detector.decision_scores_.shape == (100,)


@parametrize_with_checks(
    [AutoencoderDetector(config={"epochs": 1})],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_scikit_learn_checks(estimator: AutoencoderDetector, check, server: Server) -> None:  # type: ignore[no-untyped-def]
    check(estimator.set_params(url=server.url, api_key=API_KEY))
