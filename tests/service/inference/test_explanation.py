"""The k worst features of each row."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_array_equal

from service.inference.explanation import top_features


def test_the_largest_errors_first_ties_by_column() -> None:
    errors = np.array([[0.1, 0.5, 0.2, 0.5], [3.0, 1.0, 2.0, 0.0]], dtype=np.float32)
    top = top_features(errors, 3)
    assert_array_equal(top.indices, [[1, 3, 2], [0, 2, 1]])
    assert_array_equal(top.errors, np.array([[0.5, 0.5, 0.2], [3.0, 2.0, 1.0]], np.float32))


def test_k_beyond_the_width_gives_every_feature_sorted() -> None:
    errors = np.array([[0.1, 0.3, 0.2]], dtype=np.float32)
    assert_array_equal(top_features(errors, 10).indices, [[1, 2, 0]])


def test_matches_a_full_sort_on_wide_rows() -> None:
    errors = np.random.default_rng(0).random((50, 300)).astype(np.float32)
    top = top_features(errors, 7)
    assert_array_equal(top.indices, np.argsort(-errors, axis=1, kind="stable")[:, :7])
