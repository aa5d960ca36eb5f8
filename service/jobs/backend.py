"""The job backend interface: the local process pool and Celery both implement it."""

from __future__ import annotations

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
