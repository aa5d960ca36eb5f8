"""Which features made a row score high: the k largest per-feature losses of each row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class TopFeatures:
    indices: npt.NDArray[np.int64]
    """(n, k) columns of each row's k largest feature errors, the largest first."""
    errors: npt.NDArray[np.float32]
    """(n, k) those errors."""


def top_features(feature_errors: npt.NDArray[np.float32], k: int) -> TopFeatures:
    """The k worst features of each row of an n × d error matrix (all d when k > d); ties keep
    the lower column first, so the answer does not depend on the sort's whims."""
    n, d = feature_errors.shape
    k = min(k, d)
    if k < d:  # argpartition first: O(d) per row rather than a full sort of wide rows
        candidates = np.argpartition(-feature_errors, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(d), (n, d))
    values = np.take_along_axis(feature_errors, candidates, axis=1)
    # Sort the k candidates: by error descending, then column ascending.
    order = np.lexsort((candidates, -values), axis=1)
    indices = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    errors = np.take_along_axis(values, order, axis=1).astype(np.float32)
    return TopFeatures(indices, errors)
