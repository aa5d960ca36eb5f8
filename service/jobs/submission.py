"""Submit-time checks of a /train body: a bad name, config or data is a 422 now, not a failed
job minutes later. Only what can be known without training is checked here."""

from __future__ import annotations

import numpy as np

from core.config import BCE_RANGE_TOLERANCE, MIN_ROWS, TrainConfig
from core.datasets import DatasetNotFound, DatasetStore, DataSummary
from core.errors import InvalidInput
from core.jobs.records import JobRecord, JobSpec
from core.repository import ModelRepository, check_name
from service.jobs.backend import JobBackend
from service.jobs.schemas import TrainRequest


def submit(
    request: TrainRequest, jobs: JobBackend, datasets: DatasetStore, repository: ModelRepository
) -> JobRecord:
    return jobs.submit(prepare(request, datasets, repository))


def prepare(request: TrainRequest, datasets: DatasetStore, repository: ModelRepository) -> JobSpec:
    """Validate the request and store its inline rows; the spec names the stored dataset."""
    name = check_name(request.name)
    vectors = request.data.vectors
    if vectors is None:
        assert request.data.dataset is not None  # TrainData guarantees one of the two
        try:
            info = datasets.info(request.data.dataset)
        except DatasetNotFound as exc:
            raise InvalidInput(f"data.dataset: {exc.message}") from None
        check_data(name, request.config, info, repository)
        dataset = info.dataset
    else:
        array = as_matrix(vectors)
        check_data(name, request.config, DataSummary.of(array), repository)
        dataset = datasets.add_array(array).dataset
    return JobSpec(
        name=name,
        dataset=dataset,
        config=request.config.model_dump(mode="json"),
        promote=request.promote,
        epochs=request.config.epochs,
    )


def as_matrix(vectors: list[list[float]]) -> np.ndarray:
    width = len(vectors[0])
    for row, values in enumerate(vectors):
        if len(values) != width:
            raise InvalidInput(
                f"data.vectors row {row} has {len(values)} values; row 0 has {width}"
            )
    return np.asarray(vectors, dtype=np.float32)


def check_data(
    name: str, config: TrainConfig, data: DataSummary, repository: ModelRepository
) -> None:
    if data.rows < MIN_ROWS:
        raise InvalidInput(f"data has {data.rows} rows; training needs at least {MIN_ROWS}")
    try:
        resolved = config.resolve(data.dim)
    except ValueError as exc:
        raise InvalidInput(f"config: {exc}") from None
    n_val = round(data.rows * config.validation_fraction)
    if not 1 <= n_val < data.rows:
        raise InvalidInput(
            f"config: validation_fraction {config.validation_fraction} of {data.rows} rows leaves "
            f"{n_val} validation and {data.rows - n_val} training rows; both need at least one"
        )
    check_dimension(name, data.dim, repository)
    if resolved.loss == "bce" and resolved.scaling == "none":
        check_unit_range(data)


def check_dimension(name: str, dim: int, repository: ModelRepository) -> None:
    """A new version must keep the model's input dimension: its clients send d-wide rows."""
    if name not in repository.names():
        return
    active = repository.active_version(name)
    if active is None:
        return
    expected = int(repository.manifest(name, active)["input_dim"])
    if dim != expected:
        raise InvalidInput(f"data has {dim} features; model {name!r} v{active} expects {expected}")


def check_unit_range(data: DataSummary) -> None:
    """BCE targets are probabilities; without scaling the raw values must already be."""
    for column, (low, high) in enumerate(zip(data.minimum, data.maximum, strict=True)):
        if low < -BCE_RANGE_TOLERANCE or high > 1 + BCE_RANGE_TOLERANCE:
            raise InvalidInput(
                f"config: loss 'bce' needs inputs in [0, 1] after scaling; with scaling 'none' "
                f"column {column} ranges {low:.4g}..{high:.4g}: use scaling 'minmax' or loss 'mse'"
            )
