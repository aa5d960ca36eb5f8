"""The autoencoder: an MLP encoder f down to a linear bottleneck and a mirrored decoder g.

The bottleneck has no activation: codes are unconstrained, like PCA scores, and a ReLU there
could silence latent units for good. The decoder ends in a Linear layer whose output is the
logits; `decode` applies the output activation (identity or sigmoid) on top, so BCE can be
computed from the logits, where it is numerically stable.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from core.config import TrainConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}


def mlp(widths: list[int], activation: str) -> nn.Sequential:
    """Linear layers through `widths`, an activation after each but the last."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """x [n, d] → codes z [n, k] → reconstruction ŝ [n, d], all in scaled space."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        latent_dim: int,
        activation: str,
        output_activation: str,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.encoder = mlp([input_dim, *hidden_dims, latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), input_dim], activation)
        # A module rather than a flag keeps forward free of branches, which TorchScript likes.
        self.output = nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()

    @classmethod
    def from_config(cls, config: TrainConfig, input_dim: int) -> Autoencoder:
        """Build from a config already resolved for `input_dim`."""
        if config.hidden_dims is None or config.latent_dim is None:
            raise ValueError("resolve the config for the input dimension first")
        return cls(
            input_dim=input_dim,
            hidden_dims=config.hidden_dims,
            latent_dim=config.latent_dim,
            activation=config.activation,
            output_activation=config.output_activation,
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        codes: torch.Tensor = self.encoder(x)  # [n, d] → [n, k]
        return codes

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.decoder(z)  # [n, k] → [n, d], before the output activation
        return logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        reconstruction: torch.Tensor = self.output(self.decode_logits(z))  # [n, k] → [n, d]
        return reconstruction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
