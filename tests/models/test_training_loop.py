from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import ConfigError, TrainConfig
from core.rules import RuleViolation
from models.autoencoder import Autoencoder
from models.training import (
    TrainingCancelled,
    TrainingDiverged,
    evaluate,
    fit,
    make_loss_fn,
    make_optimizer,
    make_scheduler,
    split_rows,
    train_one_epoch,
)

# A narrow network, so that 8 epochs leave a clear drop of the loss to see (the default's wide
# layers get most of the way in the first epoch, and BCE's floor is the targets' entropy).
FAST = {"epochs": 8, "batch_size": 128, "hidden_dims": [10], "latent_dim": 5}


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_training_reduces_the_loss_on_cardio(cardio: np.ndarray, loss: str, optimizer: str) -> None:
    result = fit(cardio, TrainConfig(loss=loss, optimizer=optimizer, **FAST))
    first, best = result.history[0], result.best
    assert best.val_loss < 0.9 * first.val_loss
    assert best.train_loss < first.train_loss
    assert result.rows_train + len(result.validation_rows) == len(cardio)
    assert len(result.validation_rows) == round(0.2 * len(cardio))


def test_bce_on_digits_without_scaling() -> None:
    from core.data import load_array

    digits = load_array("builtin:digits")[:400]
    result = fit(digits, TrainConfig(loss="bce", scaling="none", **FAST))
    assert result.scaling.method == "none" and result.scaling.clip
    assert result.best.val_loss < result.history[0].val_loss


def test_same_seed_gives_identical_weights(cardio: np.ndarray) -> None:
    config = TrainConfig(epochs=3, seed=7)
    first, second = fit(cardio, config), fit(cardio, config)
    other = fit(cardio, config.model_copy(update={"seed": 8}))
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert first.history == second.history
    np.testing.assert_array_equal(first.validation_rows, second.validation_rows)
    assert not torch.equal(first.model.encoder[0].weight, other.model.encoder[0].weight)


def test_fit_leaves_the_global_torch_rng_alone(cardio: np.ndarray) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(cardio[:100], TrainConfig(epochs=1))
    torch.testing.assert_close(torch.rand(3), expected)


def test_early_stopping_restores_the_best_epoch(cardio: np.ndarray) -> None:
    config = TrainConfig(epochs=300, early_stopping_patience=2, learning_rate=0.02)
    result = fit(cardio[:300], config)
    val_losses = [epoch.val_loss for epoch in result.history]
    assert result.epochs_run < 300
    assert result.epochs_run == result.best_epoch + 2
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    # The returned weights are those of the best epoch, not the last.
    scaled = torch.from_numpy(result.scaling.apply(result.validation_rows))
    restored = evaluate(result.model, scaled, make_loss_fn("mse"), batch_size=256)
    assert restored == pytest.approx(result.best.val_loss, rel=1e-5)


def test_patience_zero_runs_every_epoch(cardio: np.ndarray) -> None:
    result = fit(cardio[:200], TrainConfig(epochs=6, early_stopping_patience=0))
    assert result.epochs_run == 6


def test_progress_is_reported_every_epoch(cardio: np.ndarray) -> None:
    calls: list[tuple[int, int, float, float]] = []
    result = fit(cardio[:200], TrainConfig(epochs=4), progress=lambda *args: calls.append(args))
    assert calls == [(e.epoch, 4, e.train_loss, e.val_loss) for e in result.history]


def test_should_stop_cancels(cardio: np.ndarray) -> None:
    epochs_seen: list[int] = []
    with pytest.raises(TrainingCancelled, match="training cancelled at epoch 3"):
        fit(
            cardio[:200],
            TrainConfig(epochs=10),
            progress=lambda epoch, *_: epochs_seen.append(epoch),
            should_stop=lambda: len(epochs_seen) == 2,
        )
    assert epochs_seen == [1, 2]


def bce_unfriendly_rows() -> np.ndarray:
    """40 rows in [0, 1] except column 3, which alternates between -2.1 and 5.0."""
    X = np.random.default_rng(0).uniform(size=(40, 5)).astype(np.float32)
    X[:, 3] = np.where(np.arange(40) % 2 == 0, -2.1, 5.0)
    return X


def test_bce_needs_inputs_in_the_unit_interval() -> None:
    with pytest.raises(RuleViolation) as caught:
        fit(bce_unfriendly_rows(), TrainConfig(loss="bce", scaling="none", epochs=1))
    assert str(caught.value) == (
        "loss 'bce' needs inputs in [0, 1] after scaling; with scaling 'none' column 3 ranges "
        "-2.1..5: use scaling 'minmax' or loss 'mse'"
    )


def test_bce_with_standard_scaling_is_refused() -> None:
    with pytest.raises(RuleViolation) as caught:
        fit(bce_unfriendly_rows(), TrainConfig(loss="bce", scaling="standard", epochs=1))
    message = str(caught.value)
    assert message.startswith("loss 'bce' needs inputs in [0, 1] after scaling; with scaling ")
    assert message.endswith("(5 columns in all): use scaling 'minmax' or loss 'mse'")


def test_bce_with_minmax_accepts_any_range() -> None:
    result = fit(bce_unfriendly_rows(), TrainConfig(loss="bce", epochs=1))
    assert result.scaling.method == "minmax"


def test_too_few_rows(cardio: np.ndarray) -> None:
    with pytest.raises(RuleViolation) as caught:
        fit(cardio[:9], TrainConfig(epochs=1))
    assert str(caught.value) == "data has 9 rows; training needs at least 10"


def test_validation_fraction_that_leaves_no_validation_rows(cardio: np.ndarray) -> None:
    with pytest.raises(RuleViolation) as caught:
        fit(cardio[:20], TrainConfig(epochs=1, validation_fraction=0.01))
    assert str(caught.value) == (
        "validation_fraction 0.01 of 20 rows leaves 0 validation and 20 training rows; "
        "both need at least one"
    )


def test_bottleneck_errors_surface_from_fit(cardio: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="latent_dim 30 must be smaller than the 21 input"):
        fit(cardio, TrainConfig(latent_dim=30, epochs=1))


def test_divergence_is_reported(cardio: np.ndarray) -> None:
    # Unscaled values near 1e20 square to inf in float32 on the first batch.
    with pytest.raises(TrainingDiverged) as caught:
        fit(cardio[:100] * 1e20, TrainConfig(scaling="none", epochs=2))
    assert str(caught.value).startswith("training diverged at epoch 1 (train loss ")
    assert str(caught.value).endswith("lower learning_rate (now 0.001)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_requested_without_cuda(cardio: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="device 'cuda' was requested but CUDA is not"):
        fit(cardio[:100], TrainConfig(device="cuda", epochs=1))


def test_max_rows_per_epoch_bounds_the_rows_of_each_epoch(cardio: np.ndarray) -> None:
    seen: list[torch.Tensor] = []

    def counting_mse(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return torch.nn.functional.mse_loss(model(batch), batch)

    result = fit(cardio[:200], TrainConfig(epochs=1))
    X = torch.from_numpy(cardio[:500])
    optimizer = torch.optim.SGD(result.model.parameters(), lr=0.0)
    generator = torch.Generator().manual_seed(0)
    train_one_epoch(result.model, X, optimizer, counting_mse, 32, generator, max_rows=100)
    first = torch.cat(seen)
    seen.clear()
    train_one_epoch(result.model, X, optimizer, counting_mse, 32, generator, max_rows=100)
    second = torch.cat(seen)
    # 100 distinct rows per epoch in batches of 32, 32, 32, 4; a fresh sample the next epoch.
    assert [len(batch) for batch in seen] == [32, 32, 32, 4]
    assert len(torch.unique(first, dim=0)) == len(torch.unique(second, dim=0)) == 100
    assert not torch.equal(torch.unique(first, dim=0), torch.unique(second, dim=0))


def test_max_rows_per_epoch_larger_than_the_data_visits_every_row(cardio: np.ndarray) -> None:
    config = TrainConfig(epochs=2, seed=3)
    everything = fit(cardio[:300], config)
    bounded = fit(cardio[:300], config.model_copy(update={"max_rows_per_epoch": 10_000}))
    assert everything.history == bounded.history


def test_plateau_schedule_halves_the_rate_after_a_quarter_of_the_patience() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    scheduler = make_scheduler(optimizer, TrainConfig(early_stopping_patience=20))
    assert scheduler is not None
    rates = []
    for _ in range(8):
        scheduler.step(1.0)  # a validation loss that never improves
        rates.append(optimizer.param_groups[0]["lr"])
    # The first epoch sets the best; five more without improvement are tolerated, the sixth halves.
    assert rates == [1e-3] * 6 + [5e-4] * 2
    assert make_scheduler(optimizer, TrainConfig(learning_rate_schedule="constant")) is None


def test_adam_steps_with_the_fused_kernel() -> None:
    config = TrainConfig().resolve(8)
    model = Autoencoder.from_config(config, 8)
    assert make_optimizer(model, config).defaults["fused"]
    rmsprop = config.model_copy(update={"optimizer": "rmsprop"})
    assert not make_optimizer(model, rmsprop).defaults.get("fused")


def test_validation_rows_are_a_float32_copy_of_the_held_out_rows(cardio: np.ndarray) -> None:
    X = cardio[:200].astype(np.float64)
    result = fit(X, TrainConfig(epochs=1, seed=5))
    _, val_idx = split_rows(len(X), 0.2, 5)
    assert result.validation_rows.dtype == np.float32
    np.testing.assert_array_equal(result.validation_rows, X[val_idx].astype(np.float32))
    assert not np.shares_memory(result.validation_rows, X)
