"""Train, export and publish one version: what the CLI and the training-job backends call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import rules
from core.config import TrainConfig
from core.manifest import Manifest, check_feature_names
from core.repository import Repository, check_name
from models.export import export_model
from models.training import Progress, ShouldStop, fit


@dataclass(frozen=True)
class PublishedModel:
    name: str
    version: int
    manifest: Manifest


def train_and_publish(
    data: np.ndarray,
    name: str,
    config: TrainConfig,
    repository: Repository,
    *,
    promote: bool,
    feature_names: list[str] | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> PublishedModel:
    """Fit on raw rows [n, d] and publish the result as the next version of `name`;
    `feature_names` (one per column) go into its manifest."""
    check_name(name)  # fail before training, not after minutes of it
    if feature_names is not None:
        check_feature_names(feature_names, data.shape[1])
    if name in repository.names():
        active = repository.active_version(name)
        if active is not None:
            input_dim = repository.manifest(name, active).input_dim
            rules.check_input_dim(data.shape[1], input_dim, rules.model_label(name, active))
    result = fit(data, config, progress=progress, should_stop=should_stop)
    with repository.staging() as staging:
        export_model(result, staging, feature_names=feature_names)
        version = repository.publish(name, staging, promote=promote)
    return PublishedModel(name, version, repository.manifest(name, version))
