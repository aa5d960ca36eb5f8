"""Submit-time checks of a /train body: a bad name, config or data is a 422 now, not a failed
job minutes later. Only what can be known without training is checked here."""

from __future__ import annotations

import numpy as np

from core import rules
from core.config import MAX_PARAMETERS, TrainConfig
from core.datasets import DatasetNotFound, DatasetStore, DataSummary
from core.errors import InvalidInput
from core.jobs.records import JobRecord, JobSpec
from core.manifest import check_feature_names
from core.repository import Repository, check_name
from service.jobs.backend import JobBackend
from service.jobs.dataset_use import record_job
from service.jobs.schemas import TrainRequest


def submit(
    request: TrainRequest,
    jobs: JobBackend,
    datasets: DatasetStore,
    repository: Repository,
    max_parameters: int = MAX_PARAMETERS,
    rows: np.ndarray | None = None,
) -> JobRecord:
    spec = prepare(request, datasets, repository, max_parameters, rows)
    return record_job(spec, jobs, datasets)


def prepare(
    request: TrainRequest,
    datasets: DatasetStore,
    repository: Repository,
    max_parameters: int = MAX_PARAMETERS,
    rows: np.ndarray | None = None,
) -> JobSpec:
    """Validate the request and store its inline rows (`rows`, already a float32 matrix, or
    `data.vectors`); the spec names the stored dataset. A model over `max_parameters` (the
    server's setting) is refused here."""
    name = check_name(request.name)
    vectors = request.data.vectors
    feature_names = request.feature_names
    if rows is None and vectors is None:
        assert request.data.dataset is not None  # TrainData guarantees one of the two
        try:
            info = datasets.info(request.data.dataset)
        except DatasetNotFound as exc:
            raise InvalidInput(f"data.dataset: {exc.message}") from None
        check_data(name, request.config, info, repository, max_parameters)
        check_names(feature_names, info.dim)
        dataset = info.dataset
        if feature_names is None:
            feature_names = info.feature_names
    else:
        array = rows if rows is not None else as_matrix(vectors or [])
        check_data(name, request.config, DataSummary.of(array), repository, max_parameters)
        check_names(feature_names, array.shape[1])
        dataset = datasets.add_array(array).dataset
    return JobSpec(
        name=name,
        dataset=dataset,
        config=request.config.model_dump(mode="json"),
        promote=request.promote,
        epochs=request.config.epochs,
        feature_names=feature_names,
    )


def check_names(names: list[str] | None, dim: int) -> None:
    """Given names must name each column once: 422 at submit, before the job exists."""
    if names is None:
        return
    try:
        check_feature_names(names, dim)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def as_matrix(vectors: list[list[float]]) -> np.ndarray:
    """Inline training rows as float32: as wide as their first row, finite in float32 too."""
    widths = rules.row_widths(vectors, where="data.vectors")
    rules.check_row_widths(widths, int(widths[0]), where="data.vectors")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which check_finite names
        array = np.asarray(vectors, dtype=np.float32)
    rules.check_finite(array, vectors, where="data.vectors")
    return array


def check_data(
    name: str,
    config: TrainConfig,
    data: DataSummary,
    repository: Repository,
    max_parameters: int = MAX_PARAMETERS,
) -> None:
    rules.check_min_rows(data.rows)
    try:
        resolved = config.resolve(data.dim, max_parameters)
    except ValueError as exc:
        raise InvalidInput(f"config: {exc}") from None
    rules.check_validation_split(data.rows, config.validation_fraction, where="config")
    check_dimension(name, data.dim, repository)
    if resolved.loss == "bce" and resolved.scaling == "none":
        # Unscaled, the raw values are what BCE sees.
        rules.check_bce_range(data.minimum, data.maximum, "none", where="config")


def check_dimension(name: str, dim: int, repository: Repository) -> None:
    """A new version must keep the model's input dimension: its clients send d-wide rows."""
    if name not in repository.names():
        return
    active = repository.active_version(name)
    if active is None:
        return
    expected = repository.manifest(name, active).input_dim
    rules.check_input_dim(dim, expected, rules.model_label(name, active))
