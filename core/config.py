"""The training configuration: validated at submit time, made concrete once d is known.

This module must stay free of torch and numpy: the API process imports it to validate the `config`
of a `POST /train` body before queueing the job.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu", "gelu"]
OutputActivation = Literal["auto", "linear", "sigmoid"]
Loss = Literal["mse", "bce"]
Optimizer = Literal["adam", "rmsprop"]
Schedule = Literal["constant", "plateau"]
ScalingMethod = Literal["auto", "standard", "minmax", "none"]
Device = Literal["auto", "cpu", "cuda"]
Score = Literal["manifold", "combined", "reconstruction"]

MAX_DEFAULT_LATENT = 32
"""Derived bottlenecks stop growing here: wider codes rarely help anomaly detection."""
MIN_DEFAULT_WIDTH = 64
MAX_DEFAULT_WIDTH = 256
"""The first derived hidden layer is 2d wide within these bounds (docs/quality.md)."""
MAX_DEFAULT_LAYERS = 2
MAX_PARAMETERS = 50_000_000
"""Default of the server's `max_parameters` setting: most weights a model trained over HTTP may
have (200 MB in float32); `hidden_dims: [1000000, 1000000]` would try to allocate terabytes."""


def parameter_count(widths: list[int]) -> int:
    """Weights and biases of an encoder through `widths` and its mirror-image decoder."""
    return 2 * sum(a * b for a, b in pairwise(widths)) + sum(widths[1:]) + sum(widths[:-1])


class ConfigError(ValueError):
    """A configuration that cannot train a model on this data."""


class TrainConfig(BaseModel):
    """Every knob of one training run; each field is optional in a `/train` body."""

    model_config = ConfigDict(extra="forbid")

    hidden_dims: list[PositiveInt] | None = Field(
        default=None,
        description="Encoder layer widths from input to bottleneck; the decoder mirrors them. "
        f"None derives two layers from the input dimension d: 2d wide (at least "
        f"{MIN_DEFAULT_WIDTH}, at most {MAX_DEFAULT_WIDTH}), then half of that.",
    )
    latent_dim: PositiveInt | None = Field(
        default=None,
        description="Width k of the bottleneck (the codes). None derives max(2, d // 4), "
        f"at most {MAX_DEFAULT_LATENT} and below d.",
    )
    activation: Activation = Field(
        default="relu", description="Activation after each hidden layer."
    )
    output_activation: OutputActivation = Field(
        default="auto",
        description="Applied to the decoder's output: auto is sigmoid for bce, linear for mse.",
    )
    loss: Loss = Field(
        default="mse",
        description="Reconstruction loss, also the anomaly score. bce needs inputs in [0, 1] "
        "after scaling.",
    )
    optimizer: Optimizer = Field(default="adam", description="Optimizer.")
    learning_rate: float = Field(default=1e-3, gt=0, le=1, description="Optimizer step size.")
    learning_rate_schedule: Schedule = Field(
        default="plateau",
        description="plateau halves the learning rate once the validation loss has not "
        "improved for more than a quarter of early_stopping_patience epochs (at least 1); "
        "constant keeps it.",
    )
    weight_decay: float = Field(
        default=0.0, ge=0, le=1, description="L2 penalty on the weights, passed to the optimizer."
    )
    epochs: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Most passes over the data (of at most max_rows_per_epoch rows each).",
    )
    batch_size: int = Field(default=64, ge=1, le=1_000_000, description="Rows per step.")
    max_rows_per_epoch: PositiveInt | None = Field(
        default=10_000,
        description="An epoch visits at most this many training rows, drawn afresh at random "
        "each epoch, so large data sets train in bounded time; None visits every row.",
    )
    validation_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of rows held out for early stopping; they also calibrate the "
        "threshold and p-values.",
    )
    early_stopping_patience: int = Field(
        default=20,
        ge=0,
        description="Stop after this many epochs without a lower validation loss; 0 turns "
        "early stopping off. The weights of the best epoch are kept either way.",
    )
    scaling: ScalingMethod = Field(
        default="auto",
        description="Per-feature input scaling fitted on the training rows: auto is standard "
        "for mse, minmax for bce.",
    )
    score: Score = Field(
        default="manifold",
        description="The anomaly score the model returns (docs/quality.md#the-score). manifold "
        "(the default, best on its benchmark): the mean feature error, each feature's divided "
        "by its mean on the held-out rows, plus twice the mean distance from the row's "
        "reconstruction to its 5 nearest among (1,000 to 4,000) training rows' reconstructions, "
        "plus twice the same distance from the row itself, each term divided by its mean on the "
        "held-out rows, so a normal row scores about 5; it also flags rows that reconstruct "
        "well but land where no training row was. combined: the plain mean feature error plus "
        "the distance between codes to the 5th nearest, weight 1, cheaper to serve for wide "
        "rows (its distance costs 1,000 times the code width per row; manifold's two cost "
        "2R times the row width, R from 4,000 down to 1,000 for wide rows). "
        "reconstruction: the mean feature error alone, the training loss in the loss's units; "
        "choose it when the score must be comparable across models or read as an error, or when "
        "anomalies are known to lie off the normal data's manifold.",
    )
    threshold_quantile: float = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="Quantile of the held-out scores used as the anomaly threshold.",
    )
    seed: int = Field(
        default=0,
        ge=0,
        lt=2**63,
        description="Seeds the split, the initial weights and the shuffling: same seed and "
        "data give the same model on the CPU.",
    )
    device: Device = Field(
        default="auto", description="Where to train: auto uses CUDA when it is available."
    )

    def resolve(self, input_dim: int, max_parameters: int | None = None) -> TrainConfig:
        """A copy with every `auto`/None made concrete for d = `input_dim`; checks the shape,
        and the size against `max_parameters` (the server's setting) when given."""
        if input_dim < 2:
            raise ConfigError(
                f"data has {input_dim} feature; an autoencoder needs at least 2 to compress"
            )
        latent_dim = self.latent_dim or default_latent_dim(input_dim)
        hidden_dims = (
            self.hidden_dims
            if self.hidden_dims is not None
            else default_hidden_dims(input_dim, latent_dim)
        )
        output_activation = self.output_activation
        if output_activation == "auto":
            output_activation = "sigmoid" if self.loss == "bce" else "linear"
        scaling = self.scaling
        if scaling == "auto":
            scaling = "minmax" if self.loss == "bce" else "standard"

        if latent_dim >= input_dim:
            raise ConfigError(
                f"latent_dim {latent_dim} must be smaller than the {input_dim} input features, "
                "or the autoencoder can learn the identity"
            )
        narrow = [width for width in hidden_dims if width < latent_dim]
        if narrow:
            raise ConfigError(
                f"hidden_dims {hidden_dims} has a layer of width {narrow[0]}, narrower than "
                f"latent_dim {latent_dim}: the bottleneck must be the narrowest layer"
            )
        parameters = parameter_count([input_dim, *hidden_dims, latent_dim])
        if max_parameters is not None and parameters > max_parameters:
            raise ConfigError(
                f"hidden_dims {list(hidden_dims)} with latent_dim {latent_dim} make a model of "
                f"{parameters:,} parameters for {input_dim} features; this server takes at most "
                f"{max_parameters:,} (AESERVE_MAX_PARAMETERS): use narrower or fewer layers"
            )
        if self.loss == "bce" and output_activation == "linear":
            raise ConfigError(
                "loss 'bce' needs output_activation 'sigmoid' (or 'auto'), not 'linear'"
            )
        return self.model_copy(
            update={
                "hidden_dims": list(hidden_dims),
                "latent_dim": latent_dim,
                "output_activation": output_activation,
                "scaling": scaling,
            }
        )


def default_latent_dim(input_dim: int) -> int:
    return min(max(2, input_dim // 4), MAX_DEFAULT_LATENT, input_dim - 1)


def default_hidden_dims(input_dim: int, latent_dim: int) -> list[int]:
    """[w, w/2] with w = 2d clamped to [64, 256], keeping each layer at least twice the bottleneck.

    Wider than d on purpose: narrow encoders (halving from d) underfit the normal data and scored
    lower on every kind of data set of the benchmark (docs/quality.md); the bottleneck, not the
    hidden width, is what keeps the autoencoder from learning the identity.
    """
    widths: list[int] = []
    width = min(max(2 * input_dim, MIN_DEFAULT_WIDTH), MAX_DEFAULT_WIDTH)
    while width >= 2 * latent_dim and len(widths) < MAX_DEFAULT_LAYERS:
        widths.append(width)
        width //= 2
    return widths or [2 * latent_dim]
