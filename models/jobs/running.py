"""One job inside a training process. The only module of `service.jobs` that reaches torch,
and only when `run_job` is called: the API process imports it for nothing else."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from core.config import TrainConfig
from core.data import DataError
from core.datasets import DatasetStore
from core.errors import AeserveError
from core.importing import ImportOptions
from core.jobs.records import INTERRUPTED, Fate, JobOutcome, JobResult, JobSpec
from core.manifest import ModelRef
from core.model_files import ModelFileStore
from core.repository import Repository, sha256_of
from models.jobs.watchdog import Watchdog

if TYPE_CHECKING:
    from models.pipeline import PublishedModel

log = logging.getLogger("aeserve.jobs")


class JobCancelled(Exception):
    pass


class JobInterrupted(Exception):
    pass


class JobHooks(ABC):
    """The backend's side of a running job: where progress goes and where its fate is kept."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog

    @abstractmethod
    def record_epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        """Store one epoch's losses where every API process can read them."""

    @abstractmethod
    def fate(self) -> Fate | None: ...

    @abstractmethod
    def seal(self, fate: Fate) -> Fate | None:
        """Set the fate unless one is set already; return the fate that holds."""

    def should_stop(self) -> bool:
        """Polled once per epoch: True when cancelled; raises when the job was given up."""
        if self.watchdog.orphaned:
            raise JobInterrupted(INTERRUPTED)
        fate = self.fate()
        if fate == "lost":
            raise JobInterrupted(INTERRUPTED)
        return fate == "cancelled"

    def claim_publish(self) -> None:
        """Called right before publishing: after this the job can no longer be cancelled."""
        if self.watchdog.orphaned:
            raise JobInterrupted(INTERRUPTED)
        fate = self.seal("publishing")
        if fate == "cancelled":
            raise JobCancelled
        if fate != "publishing":
            raise JobInterrupted(INTERRUPTED)


def run_job(
    spec: JobSpec, repository: Repository, datasets: DatasetStore, hooks: JobHooks
) -> JobOutcome:
    """Train (or import) and publish; every way this can end becomes an outcome, never an
    exception."""
    from models.training import TrainingCancelled

    # Publishing first claims the job's fate: from then on it can no longer be cancelled.
    repository.publish_gate = hooks.claim_publish
    try:
        published = _publish(spec, repository, datasets, hooks)
    except (TrainingCancelled, JobCancelled):
        return JobOutcome(status="cancelled")
    except JobInterrupted as exc:
        return JobOutcome(status="failed", error=str(exc))
    except ValueError as exc:
        # DataError, ConfigError, TrainingDiverged: their messages say what to change.
        return JobOutcome(status="failed", error=str(exc))
    except AeserveError as exc:  # a rule the data broke (e.g. too few calibration rows)
        return JobOutcome(status="failed", error=exc.message)
    except Exception as exc:
        log.exception("job %s %r failed", spec.kind, spec.name)
        return JobOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")
    training = published.manifest.training
    result = JobResult(
        model=ModelRef(name=published.name, version=published.version),
        promoted=repository.active_version(published.name) == published.version,
        epochs_run=training.epochs_run if training else None,
        best_epoch=training.best_epoch if training else None,
        val_loss=training.val_loss if training else None,
        threshold=published.manifest.threshold,
    )
    return JobOutcome(status="succeeded", result=result)


def _publish(
    spec: JobSpec, repository: Repository, datasets: DatasetStore, hooks: JobHooks
) -> PublishedModel:
    rows = datasets.load(spec.dataset)
    if spec.kind == "import":
        from models.importing import import_and_publish

        assert spec.model_file is not None  # the API process sets it for every import
        model_file = spec.model_file
        path = ModelFileStore(datasets.root).path(model_file.sha256, model_file.format)
        if not path.is_file() or sha256_of(path) != model_file.sha256:
            raise DataError(
                f"model file {model_file.file!r} is missing or does not match its sha256"
            )
        return import_and_publish(
            path,
            rows,
            spec.name,
            ImportOptions.model_validate(spec.config),
            repository,
            promote=spec.promote,
            file_name=model_file.file,
        )
    from models.pipeline import train_and_publish

    return train_and_publish(
        rows,
        spec.name,
        TrainConfig.model_validate(spec.config),
        repository,
        promote=spec.promote,
        feature_names=spec.feature_names,
        progress=hooks.record_epoch,
        should_stop=hooks.should_stop,
    )
