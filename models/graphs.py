"""The exported graphs as PyTorch modules: scaling, the autoencoder and the score in one place.

Scaling is baked in so the server feeds raw rows and gets raw units back; the math is the one in
docs/artifacts.md.
"""

from __future__ import annotations

import torch
from torch import nn

from models.autoencoder import Autoencoder
from models.scaling import Scaling
from models.scoring import CombinedScore, LatentStats


class InputScaling(nn.Module):
    """Raw rows x [n, d] → scaled rows s [n, d]."""

    offset: torch.Tensor  # [d]
    scale: torch.Tensor  # [d]

    def __init__(self, scaling: Scaling) -> None:
        super().__init__()
        self.register_buffer("offset", torch.from_numpy(scaling.offset.copy()))
        self.register_buffer("scale", torch.from_numpy(scaling.scale.copy()))
        self.clip = scaling.clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x - self.offset) / self.scale
        return torch.clamp(s, 0.0, 1.0) if self.clip else s

    def invert(self, s: torch.Tensor) -> torch.Tensor:
        return s * self.scale + self.offset


class ScoringGraph(nn.Module):
    """autoencoder.onnx: x [n, d] → codes [n, k], reconstructions [n, d], scores [n],
    feature_errors [n, d].

    Without `latent` the score is the mean feature error (the `reconstruction` score); with it,
    the `manifold` or `combined` score of models/scoring.py.
    """

    def __init__(
        self, model: Autoencoder, scaling: Scaling, loss: str, latent: LatentStats | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)
        self.bce = loss == "bce"
        self.combined = CombinedScore(latent) if latent is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = self.scaling(x)
        codes = self.model.encode(s)
        logits = self.model.decode_logits(codes)
        s_hat = self.model.output(logits)
        if self.bce:
            # -(s log σ(l) + (1 - s) log(1 - σ(l))) rewritten so exp never overflows.
            errors = torch.clamp(logits, min=0) - logits * s + torch.log1p(torch.exp(-logits.abs()))
        else:
            errors = (s - s_hat) ** 2
        if self.combined is None:
            # Summed in float64 so a row's score does not depend on the rows batched with it.
            scores = errors.double().mean(dim=1).float()
        else:
            points = codes if self.combined.space == "codes" else s_hat
            scores = self.combined(errors, points, s)
        return codes, self.scaling.invert(s_hat), scores, errors


class EncoderGraph(nn.Module):
    """encoder.onnx: x [n, d] → codes [n, k]."""

    def __init__(self, model: Autoencoder, scaling: Scaling) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(self.scaling(x))


class DecoderGraph(nn.Module):
    """decoder.onnx: codes [n, k] → reconstructions [n, d] in raw units."""

    def __init__(self, model: Autoencoder, scaling: Scaling) -> None:
        super().__init__()
        self.model = model
        self.scaling = InputScaling(scaling)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.scaling.invert(self.model.decode(codes))
