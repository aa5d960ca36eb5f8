from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import ConfigError, TrainConfig

REPO_ROOT = Path(__file__).parents[2]


def test_defaults() -> None:
    config = TrainConfig()
    assert config.hidden_dims is None and config.latent_dim is None
    assert (config.activation, config.output_activation, config.loss) == ("relu", "auto", "mse")
    assert (config.optimizer, config.learning_rate, config.weight_decay) == ("adam", 1e-3, 0.0)
    assert config.learning_rate_schedule == "plateau"
    assert (config.epochs, config.batch_size, config.early_stopping_patience) == (500, 64, 20)
    assert config.max_rows_per_epoch == 10_000
    assert (config.validation_fraction, config.threshold_quantile) == (0.2, 0.99)
    assert (config.scaling, config.seed, config.device) == ("auto", 0, "auto")


@pytest.mark.parametrize(
    ("input_dim", "hidden_dims", "latent_dim"),
    [
        (2, [64, 32], 1),
        (6, [64, 32], 2),
        (21, [64, 32], 5),
        (36, [72, 36], 9),
        (64, [128, 64], 16),
        (166, [256, 128], 32),
        (784, [256, 128], 32),
    ],
)
def test_resolve_derives_the_shape_from_the_input_dimension(
    input_dim: int, hidden_dims: list[int], latent_dim: int
) -> None:
    resolved = TrainConfig().resolve(input_dim)
    assert (resolved.hidden_dims, resolved.latent_dim) == (hidden_dims, latent_dim)


def test_resolve_picks_output_activation_and_scaling_by_loss() -> None:
    mse, bce = TrainConfig(loss="mse").resolve(21), TrainConfig(loss="bce").resolve(21)
    assert (mse.output_activation, mse.scaling) == ("linear", "standard")
    assert (bce.output_activation, bce.scaling) == ("sigmoid", "minmax")


def test_resolve_keeps_explicit_choices_and_does_not_change_the_original() -> None:
    config = TrainConfig(hidden_dims=[16, 8], latent_dim=3, scaling="none", loss="bce")
    resolved = config.resolve(21)
    assert (resolved.hidden_dims, resolved.latent_dim, resolved.scaling) == ([16, 8], 3, "none")
    assert config.output_activation == "auto"
    assert resolved.resolve(21) == resolved


def test_no_hidden_layers_is_allowed() -> None:
    assert TrainConfig(hidden_dims=[], latent_dim=4).resolve(21).hidden_dims == []


@pytest.mark.parametrize(
    ("config", "input_dim", "message"),
    [
        (
            TrainConfig(latent_dim=21),
            21,
            "latent_dim 21 must be smaller than the 21 input features, "
            "or the autoencoder can learn the identity",
        ),
        (
            TrainConfig(hidden_dims=[16, 4], latent_dim=8),
            21,
            "hidden_dims [16, 4] has a layer of width 4, narrower than latent_dim 8: "
            "the bottleneck must be the narrowest layer",
        ),
        (
            TrainConfig(loss="bce", output_activation="linear"),
            21,
            "loss 'bce' needs output_activation 'sigmoid' (or 'auto'), not 'linear'",
        ),
        (TrainConfig(), 1, "data has 1 feature; an autoencoder needs at least 2 to compress"),
    ],
)
def test_resolve_rejects_shapes_without_a_bottleneck(
    config: TrainConfig, input_dim: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config.resolve(input_dim)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "fields",
    [
        {"unknown": 1},
        {"validation_fraction": 1.0},
        {"validation_fraction": 0.0},
        {"threshold_quantile": 1.0},
        {"learning_rate": 0.0},
        {"epochs": 0},
        {"latent_dim": 0},
        {"hidden_dims": [8, 0]},
        {"activation": "softmax"},
        {"seed": -1},
        {"weight_decay": float("nan")},
    ],
)
def test_invalid_fields_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrainConfig.model_validate(fields)


def test_every_field_is_described() -> None:
    assert all(field.description for field in TrainConfig.model_fields.values())


def test_importing_the_config_loads_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, core.config; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
