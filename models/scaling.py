"""Per-feature input scaling, fitted on the training rows and baked into every exported graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.manifest import ScalingSpec


@dataclass(frozen=True)
class Scaling:
    """`s = (x - offset) / scale`, then `clip(s, 0, 1)` when `clip` is set."""

    method: str
    offset: np.ndarray  # float32 [d]
    scale: np.ndarray  # float32 [d], never zero
    clip: bool

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Raw rows [n, d] → scaled rows [n, d], float32."""
        scaled = self.unclipped(X)
        if self.clip:
            scaled = np.clip(scaled, 0.0, 1.0)
        return scaled

    def unclipped(self, X: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = ((X - self.offset) / self.scale).astype(np.float32)
        return scaled

    def invert(self, S: np.ndarray) -> np.ndarray:
        """Scaled rows [n, d] → raw units [n, d]."""
        raw: np.ndarray = (S * self.scale + self.offset).astype(np.float32)
        return raw

    def to_manifest(self) -> ScalingSpec:
        return ScalingSpec.model_validate(
            {
                "method": self.method,
                "offset": self.offset.tolist(),
                "scale": self.scale.tolist(),
                "clip": self.clip,
            }
        )


def fit_scaling(X: np.ndarray, method: str, loss: str) -> Scaling:
    """Fit `method` (standard, minmax or none) on training rows X [n, d].

    BCE models always clip: their targets must lie in [0, 1], and a served row may fall outside
    the range of the training rows.
    """
    rows = X.astype(np.float64)  # float64 sums keep the mean and spread exact for large n
    if method == "standard":
        offset, spread = rows.mean(axis=0), rows.std(axis=0)
    elif method == "minmax":
        offset = rows.min(axis=0)
        spread = rows.max(axis=0) - offset
    elif method == "none":
        offset, spread = np.zeros(X.shape[1]), np.ones(X.shape[1])
    else:
        raise ValueError(f"unknown scaling {method!r}; resolve the config first")
    # A spread lost in float32 rounding is a constant column: dividing by it would blow up noise.
    negligible = spread <= np.finfo(np.float32).eps * np.maximum(1.0, np.abs(offset))
    scale = np.where(negligible, 1.0, spread)
    return Scaling(
        method=method,
        offset=offset.astype(np.float32),
        scale=scale.astype(np.float32),
        clip=loss == "bce",
    )
