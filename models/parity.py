"""How closely an exported graph must reproduce PyTorch: tolerances in the space of the loss.

Both sides compute in float32, so they differ by rounding that grows with the magnitudes involved,
not with the output's own size: a reconstruction `ŝ · scale + offset` of a feature whose std is in
the thousands carries rounding of ~1e-4 in raw units even when it is near 0.4. Each output is
therefore judged where the loss is taken (reconstructions mapped back to `ŝ`), with RTOL and ATOL
on top of the float32 rounding its own formula implies, element by element.
"""

from __future__ import annotations

import numpy as np

from models.scaling import Scaling
from models.scoring import LatentStats, latent_slack

RTOL = 1e-4
ATOL = 1e-5
_EPS32 = float(np.finfo(np.float32).eps)

Arrays = dict[str, np.ndarray]


class ParityError(RuntimeError):
    """An exported graph disagrees with the PyTorch model it came from."""


def compare_outputs(
    graph: str,
    actual: Arrays,
    expected: Arrays,
    x: np.ndarray,
    scaling: Scaling,
    loss: str,
    latent: LatentStats | None = None,
) -> float:
    """Check every output of `graph` (ONNX `actual` against PyTorch `expected`, both float32 as
    the graphs return them); the largest difference seen, in the units each output is judged in.

    `x` is the graph's input: raw rows for the scoring graph, which the errors are taken against.
    `latent`: the scoring graph's score is the manifold or combined one (models/scoring.py);
    each of its terms may then differ by what its own inputs may, divided by its calibration
    mean (and the distance term times its weight).
    """
    offset = scaling.offset.astype(np.float64)
    scale = scaling.scale.astype(np.float64)
    slack: Arrays = {}
    if "reconstructions" in expected:
        r = np.asarray(expected["reconstructions"], dtype=np.float64)
        s_hat = (r - offset) / scale
        # Rounding of ŝ · scale and of + offset, on each side, in scaled units.
        rounding = 2 * _EPS32 * (np.abs(r) + np.abs(s_hat * scale)) / scale
        slack["reconstructions"] = rounding
        if loss == "mse" and "feature_errors" in expected:
            # e = (s - ŝ)²: ŝ may differ by its own allowance, and s - ŝ rounds with |s| + |ŝ|.
            s = scaling.apply(x).astype(np.float64)
            tol = ATOL + RTOL * np.abs(s_hat) + rounding + 2 * _EPS32 * (np.abs(s) + np.abs(s_hat))
            slack["feature_errors"] = 2 * np.abs(s - s_hat) * tol + tol**2
            slack["scores"] = slack["feature_errors"].mean(axis=1)
    if latent is not None and "scores" in expected:
        errors = np.asarray(expected["feature_errors"], dtype=np.float64)
        moved_errors = ATOL + RTOL * errors + slack.get("feature_errors", np.zeros_like(errors))
        if latent.feature_scale is not None:
            errors = errors / latent.feature_scale
            moved_errors = moved_errors / latent.feature_scale
        reconstruction = ATOL + RTOL * errors.mean(axis=1) + moved_errors.mean(axis=1)
        if latent.space == "codes":
            points = np.asarray(expected["codes"], dtype=np.float64)
            moved = ATOL + RTOL * np.abs(points)
        else:
            r = np.asarray(expected["reconstructions"], dtype=np.float64)
            points = (r - offset) / scale
            moved = ATOL + RTOL * np.abs(points) + slack["reconstructions"]
        distance = latent_slack(latent, points, moved) * latent.weight / latent.latent_mean
        if latent.input_mean is not None:
            # The scaled row s = (x - offset) / scale, rounded on each side.
            s = scaling.apply(x).astype(np.float64)
            rounding = 2 * _EPS32 * (np.abs(x) + np.abs(offset)) / scale
            moved_rows = ATOL + RTOL * np.abs(s) + rounding
            distance = distance + (
                latent_slack(latent, s, moved_rows) * latent.weight / latent.input_mean
            )
        slack["scores"] = reconstruction / latent.reconstruction_mean + distance
    worst = 0.0
    for name, want_raw in expected.items():
        got = np.asarray(actual[name], dtype=np.float64)
        want = np.asarray(want_raw, dtype=np.float64)
        if name == "reconstructions":
            got, want = (got - offset) / scale, (want - offset) / scale
        extra = slack.get(name, np.zeros_like(want))
        worst = max(worst, _check(f"{graph}.onnx {name}", got, want, extra))
    return worst


def compare(what: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """Plain RTOL/ATOL comparison; the largest absolute difference."""
    got = np.asarray(actual, dtype=np.float64)
    want = np.asarray(expected, dtype=np.float64)
    return _check(what, got, want, np.zeros_like(want))


def _check(what: str, got: np.ndarray, want: np.ndarray, slack: np.ndarray) -> float:
    diff = np.abs(got - want)
    bad = ~(diff <= ATOL + RTOL * np.abs(want) + slack)  # NaN on either side fails
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ParityError(
            f"{what} differs from PyTorch beyond rtol={RTOL}, atol={ATOL} (in the loss's "
            f"units, float32 rounding allowed): {int(bad.sum())} of {bad.size} elements, the "
            f"first at {list(first)}: {got[first]!r} vs {want[first]!r}"
        )
    return float(diff.max()) if diff.size else 0.0
