"""An independent computation of what the service must answer: the version's own ONNX graphs
for f and g, and NumPy for the scaling and the loss, both read from the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.manifest import Manifest


class Reference:
    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.manifest = manifest
        scaling = manifest.scaling
        self.offset = np.asarray(scaling.offset, dtype=np.float64)
        self.scale = np.asarray(scaling.scale, dtype=np.float64)
        self.clip = scaling.clip
        self.encoder = ort.InferenceSession(str(folder / "encoder.onnx"))
        self.decoder = ort.InferenceSession(str(folder / "decoder.onnx"))
        self.calibration = np.sort(np.load(folder / "calibration.npy"))

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.encoder.run(["codes"], {"x": x.astype(np.float32)})[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        return self.decoder.run(["reconstructions"], {"codes": z.astype(np.float32)})[0]

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        s = (x.astype(np.float64) - self.offset) / self.scale
        return np.clip(s, 0.0, 1.0) if self.clip else s

    def feature_errors(self, x: np.ndarray) -> np.ndarray:
        target = self._scaled(x)
        rebuilt = (self.reconstruct(x).astype(np.float64) - self.offset) / self.scale
        if self.manifest.loss == "mse":
            return (target - rebuilt) ** 2
        p = np.clip(rebuilt, 1e-7, 1 - 1e-7)
        return -(target * np.log(p) + (1 - target) * np.log(1 - p))

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.feature_errors(x).mean(axis=1)

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        n = self.calibration.size
        at_least = np.array([(self.calibration >= s).sum() for s in scores])
        return (1 + at_least) / (n + 1)
