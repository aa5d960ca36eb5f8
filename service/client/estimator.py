"""`AutoencoderDetector`: PyOD's detector interface on an aeserve server.

`fit` trains a version through /train (rows over `upload_above` values go first to /datasets as
`.npy`) and scores the training rows through /score; `decision_function` scores new rows with
that version, pinned, so promoting another version elsewhere does not change this estimator.
As in PyOD, higher scores are more anomalous, `predict` gives 1 for an outlier and 0 for an
inlier, and `threshold_` is the `1 - contamination` quantile of the training scores.

This module needs scikit-learn (the `train` extra, or `pip install scikit-learn`); the rest of
`service.client` does not.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

try:
    from sklearn.base import BaseEstimator, OutlierMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "service.client.estimator needs scikit-learn: pip install scikit-learn (or aeserve[train])"
    ) from exc

from core.rules import MIN_ROWS
from service.client.sync import DEFAULT_URL, Client

UPLOAD_ABOVE_VALUES = 1_000_000
"""Training rows with more values than this are uploaded as a dataset, not sent inline."""


class AutoencoderDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """An autoencoder anomaly detector trained and served by an aeserve server.

    Parameters
    ----------
    url, api_key : the server, and its AESERVE_API_KEY (training needs it when one is set).
    name : the model to train a new version of; None trains a new model per `fit`, named
        `detector-<random>`, so that fits on data of other widths never meet.
    contamination : the share of outliers expected in the training rows: `threshold_` is the
        `1 - contamination` quantile of `decision_scores_`, as in PyOD.
    config : TrainConfig fields (`epochs`, `hidden_dims`, `loss`, ...); the server's defaults
        for the rest.
    promote : make each fitted version the model's active one. A new model's first version
        always is.
    timeout : seconds to wait for the training job.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        name: str | None = None,
        contamination: float = 0.1,
        config: dict[str, Any] | None = None,
        promote: bool = False,
        timeout: float = 600.0,
        upload_above: int = UPLOAD_ABOVE_VALUES,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.name = name
        self.contamination = contamination
        self.config = config
        self.promote = promote
        self.timeout = timeout
        self.upload_above = upload_above

    def _client(self) -> Client:
        return Client(self.url, api_key=self.api_key, timeout=self.timeout)

    def fit(self, X: npt.ArrayLike, y: object = None) -> AutoencoderDetector:
        """Train a version on X (n × d, y ignored), then score X: `decision_scores_`,
        `threshold_`, `labels_`."""
        if not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination!r}")
        # Checked here as the server would (core/rules.py), in scikit-learn's words.
        rows = validate_data(
            self, X, dtype=np.float32, ensure_min_samples=MIN_ROWS, ensure_min_features=2
        )
        names = getattr(self, "feature_names_in_", None)
        name = self.name or f"detector-{uuid.uuid4().hex[:12]}"
        with self._client() as client:
            dataset = None
            data: npt.NDArray[np.float32] | str = rows
            if rows.size > self.upload_above:
                dataset = client.upload_dataset(rows).dataset
                data = dataset
            submitted = client.train(
                name,
                data,
                config=self.config,
                promote=self.promote,
                feature_names=None if names is None else [str(n) for n in names],
            )
            record = client.wait(submitted.job_id, timeout=self.timeout)
            if dataset is not None:
                client.delete_dataset(dataset)
            assert record.result is not None  # a succeeded job names its version
            self.model_name_ = record.result.model.name
            self.model_version_ = record.result.model.version
            self.job_id_ = record.job_id
            self.decision_scores_ = self._score(client, rows).scores.astype(np.float64)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def _score(self, client: Client, rows: npt.NDArray[np.float32]) -> Any:
        return client.score(rows, model=self.model_name_, version=self.model_version_)

    def _rows(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        check_is_fitted(self, "threshold_")
        rows: npt.NDArray[np.float32] = validate_data(self, X, dtype=np.float32, reset=False)
        return rows

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Anomaly scores (the reconstruction loss) of X: higher is more anomalous."""
        rows = self._rows(X)
        with self._client() as client:
            scores: npt.NDArray[np.float64] = self._score(client, rows).scores.astype(np.float64)
        return scores

    def score_samples(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """scikit-learn's convention: higher is more normal (the negated decision_function)."""
        return -self.decision_function(X)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int_]:
        """1 for an outlier (score above `threshold_`), 0 for an inlier, as in PyOD."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def fit_predict(self, X: npt.ArrayLike, y: object = None) -> npt.NDArray[np.int_]:
        labels: npt.NDArray[np.int_] = self.fit(X).labels_
        return labels

    def predict_proba(
        self, X: npt.ArrayLike, method: Literal["linear", "conformal"] = "linear"
    ) -> npt.NDArray[np.float64]:
        """n × 2: [P(inlier), P(outlier)]. `linear` (PyOD's default): the score min-max scaled
        on the training scores, clipped to [0, 1]; `conformal`: 1 - the server's p-value."""
        if method == "conformal":
            rows = self._rows(X)
            with self._client() as client:
                outlier = 1.0 - self._score(client, rows).p_values.astype(np.float64)
        elif method == "linear":
            scores = self.decision_function(X)
            low, high = float(self.decision_scores_.min()), float(self.decision_scores_.max())
            outlier = np.clip((scores - low) / (high - low if high > low else 1.0), 0.0, 1.0)
        else:
            raise ValueError(f"method must be 'linear' or 'conformal', not {method!r}")
        return np.column_stack([1.0 - outlier, outlier])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
