"""The job backend interface: the local process pool and Celery both implement it."""

from __future__ import annotations

import builtins
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from core.jobs.records import JobRecord, JobSpec


class JobBackend(Protocol):
    """Queues, runs and reports training jobs; every method is safe to call from any thread.

    Errors are `core.errors` classes: `JobNotFound` for an unknown id, `Conflict` for a job
    that can no longer be cancelled.
    """

    def start(self) -> None:
        """Begin dispatching (and recover jobs a previous process left running)."""

    def stop(self) -> None:
        """Stop dispatching; jobs already running keep running where the backend allows."""

    def submit(self, spec: JobSpec) -> JobRecord:
        """Queue a validated job; the record comes back with status `queued`."""

    def get(self, job_id: str) -> JobRecord: ...

    def list(self, limit: int) -> list[JobRecord]:
        """The newest `limit` jobs, newest first."""

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job; a running one is stopped and publishes nothing."""

    def counts(self) -> dict[str, int]:
        """Jobs by status, for the metrics."""

    def dataset_lock(self, dataset: str) -> AbstractContextManager[None]:
        """Held by every API process while it checks a dataset and records a job on it, or
        checks that no unfinished job uses it and deletes it: the two never interleave."""

    def unfinished_using(self, dataset: str) -> builtins.list[str]:
        """Ids of the queued and running jobs that read `dataset`."""

    def sweep(self, finished_before: datetime | None) -> int:
        """Periodic housekeeping (service/jobs/sweeper.py): end jobs whose process is gone, and
        remove the records of jobs that finished before `finished_before` (None: keep them).
        Returns how many records went. Reads never change a job; this does."""
