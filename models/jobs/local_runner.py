"""One local training process, started by an API process's dispatcher: it reads its job from
SQLite, trains (torch is imported here, never in the API process) and writes progress and the
outcome back."""

from __future__ import annotations

from pathlib import Path

from core.jobs.local_store import JobStore
from core.jobs.records import Fate
from core.parent_death import die_with
from core.settings import Settings
from core.storage import open_datasets, open_repository
from models.jobs.running import JobHooks, run_job
from models.jobs.watchdog import Watchdog


class LocalHooks(JobHooks):
    def __init__(self, store: JobStore, job_id: str, watchdog: Watchdog) -> None:
        super().__init__(watchdog)
        self.store = store
        self.job_id = job_id

    def record_epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        self.store.record_epoch(self.job_id, epoch, epochs, train_loss, val_loss)

    def fate(self) -> Fate | None:
        return self.store.fate(self.job_id)

    def seal(self, fate: Fate) -> Fate | None:
        return self.store.seal(self.job_id, fate)


def supervisor_pid(store: JobStore, job_id: str) -> int | None:
    """The API process whose dispatcher claimed the job (its owner is `host:pid:token`)."""
    for job in store.running():
        if job.job_id == job_id:
            return int(job.owner.rsplit(":", 2)[1])
    return None


def run(db: Path, job_id: str, settings: Settings) -> None:
    """Train one job and record its outcome; the target of the job's process."""
    store = JobStore(db)
    # Before anything else: a server killed from now on must not leave it training.
    die_with(supervisor_pid(store, job_id))
    # No heartbeat of its own: the dispatcher that started this process beats for it.
    watchdog = Watchdog(beat=None)
    hooks = LocalHooks(store, job_id, watchdog)
    repository = open_repository(settings)
    outcome = run_job(store.spec(job_id), repository, open_datasets(settings), hooks)
    store.finish(job_id, outcome)
