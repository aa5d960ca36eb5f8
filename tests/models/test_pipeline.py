from __future__ import annotations

import numpy as np
import pytest

from core.config import TrainConfig
from core.errors import InvalidInput
from core.repository import ModelRepository
from core.rules import RuleViolation
from models.pipeline import train_and_publish

QUICK = TrainConfig(epochs=2)


def test_publishes_numbered_versions(cardio: np.ndarray, repository: ModelRepository) -> None:
    first = train_and_publish(cardio[:300], "cardio", QUICK, repository, promote=True)
    second = train_and_publish(cardio[:300], "cardio", QUICK, repository, promote=False)
    assert (first.version, second.version) == (1, 2)
    assert repository.versions("cardio") == [1, 2]
    assert repository.active_version("cardio") == 1
    assert second.manifest == repository.manifest("cardio", 2)
    assert (second.manifest.name, second.manifest.version) == ("cardio", 2)
    assert set(second.manifest.files) == {
        "autoencoder.onnx",
        "autoencoder.pt",
        "calibration.npy",
        "decoder.onnx",
        "encoder.onnx",
    }
    repository.verify("cardio", 2)
    assert not list((repository.root / ".staging").iterdir())


def test_promote_makes_the_new_version_active(
    cardio: np.ndarray, repository: ModelRepository
) -> None:
    train_and_publish(cardio[:300], "cardio", QUICK, repository, promote=True)
    train_and_publish(cardio[:300], "cardio", QUICK, repository, promote=True)
    assert repository.active_version("cardio") == 2


def test_new_data_must_keep_the_model_input_dimension(
    cardio: np.ndarray, repository: ModelRepository
) -> None:
    train_and_publish(cardio[:300], "cardio", QUICK, repository, promote=True)
    with pytest.raises(RuleViolation) as caught:
        train_and_publish(cardio[:300, :12], "cardio", QUICK, repository, promote=True)
    assert str(caught.value) == "data has 12 features; model 'cardio' v1 expects 21"
    assert repository.versions("cardio") == [1]


def test_invalid_name_is_refused_before_training(
    cardio: np.ndarray, repository: ModelRepository
) -> None:
    def never(*_: object) -> None:
        raise AssertionError("training started")

    with pytest.raises(InvalidInput, match="model name 'Bad Name' is invalid"):
        train_and_publish(cardio, "Bad Name", QUICK, repository, promote=True, progress=never)
