"""The Celery backend as API processes see it: send tasks, read records, cancel.

Any replica answers for any job: the record is the task's state in the result store (PROGRESS
meta while it trains, the outcome when it is done) joined with the job index in Redis.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis

from core.errors import Conflict, JobNotFound, NotReady
from core.jobs.celery_app import TRAIN_TASK, make_celery
from core.jobs.celery_index import JobIndex
from core.jobs.records import INTERRUPTED, JobProgress, JobRecord, JobSpec, JobStatus, utc_now
from core.settings import Settings

log = logging.getLogger("aeserve.jobs")

COUNTED_JOBS = 1000
"""The metrics count the newest jobs only (read in pipelined batches)."""
LOCK_TIMEOUT_S = 30.0
"""A dataset's lock is held for a few Redis calls; one left by a dead process expires."""

_STATES: dict[str, JobStatus] = {
    "PENDING": "queued",
    "RECEIVED": "queued",
    "STARTED": "running",
    "PROGRESS": "running",
    "RETRY": "running",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}


@contextmanager
def redis_reachable() -> Iterator[None]:
    """Redis down is a 503 that says so, not an internal error."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise NotReady(f"the job store (Redis) is unreachable: {exc}") from None


def failure_message(exc: object) -> str:
    """Words for a task that broke rather than reporting an outcome (see worker.py)."""
    if type(exc).__name__ == "WorkerLostError":
        return f"interrupted: the worker process running this job died ({exc})"
    return f"{type(exc).__name__}: {exc}"


class CeleryBackend:
    def __init__(self, settings: Settings) -> None:
        self.celery = make_celery(settings.broker_url, settings.job_retention_s)
        self.index = JobIndex.from_url(settings.broker_url, settings.job_heartbeat_timeout_s)

    def start(self) -> None:
        """Nothing to start: workers run elsewhere, and Redis is reached on first use."""

    def stop(self) -> None:
        self.index.client.close()
        self.celery.close()

    def submit(self, spec: JobSpec) -> JobRecord:
        with redis_reachable():
            return self._submit(spec)

    def get(self, job_id: str) -> JobRecord:
        with redis_reachable():
            return self._get(job_id)

    def list(self, limit: int) -> list[JobRecord]:
        with redis_reachable():
            return self._records(self.index.newest(limit))

    def counts(self) -> dict[str, int]:
        return dict(Counter(record.status for record in self.list(COUNTED_JOBS)))

    def cancel(self, job_id: str) -> JobRecord:
        with redis_reachable():
            return self._cancel(job_id)

    @contextmanager
    def dataset_lock(self, dataset: str) -> Iterator[None]:
        with redis_reachable():
            try:
                with self.index.lock(f"dataset:{dataset}", LOCK_TIMEOUT_S):
                    yield
            except redis.exceptions.LockError as exc:
                raise NotReady(f"dataset {dataset!r} is busy; try again ({exc})") from None

    def unfinished_using(self, dataset: str) -> builtins.list[str]:
        with redis_reachable():
            records = self._records(self.index.unsettled())
        return [r.job_id for r in records if r.dataset == dataset and not r.finished]

    def sweep(self, finished_before: datetime | None) -> int:
        """End the running jobs whose worker stopped beating (kill -9, a lost machine), note the
        finished ones, and remove those that finished before `finished_before`."""
        with redis_reachable():
            records = self._records(self.index.unsettled())
            running = [r.job_id for r in records if r.status == "running"]
            for job_id, alive in zip(running, self.index.alive_many(running), strict=True):
                if not alive:
                    self._give_up(job_id)
            self.index.settle(
                {r.job_id: (r.finished_at or utc_now()).timestamp() for r in records if r.finished}
            )
            if finished_before is None:
                return 0
            return self.index.remove_finished_before(finished_before.timestamp(), self._result_key)

    def _give_up(self, job_id: str) -> None:
        # Re-read: the task may have reported, or a client cancelled, since the batch was read.
        record = self._get(job_id)
        if record.status != "running" or self.index.alive(job_id):
            return
        if self.index.seal(job_id, "lost") == "cancelled":
            self.index.close(job_id, "cancelled")
        else:
            self.index.close(job_id, "failed", INTERRUPTED)
        log.warning("job %s: no heartbeat from its worker; given up", job_id)

    def _submit(self, spec: JobSpec) -> JobRecord:
        job_id = uuid.uuid4().hex
        self.index.add(job_id, spec, utc_now())
        try:
            self.celery.send_task(
                TRAIN_TASK,
                kwargs={"job_id": job_id, "spec": spec.model_dump(mode="json")},
                task_id=job_id,
            )
        except Exception as exc:
            self.index.close(job_id, "failed", f"could not queue the job: {exc}")
            raise NotReady(f"the job queue is unreachable: {exc}") from None
        return self._get(job_id)

    def _get(self, job_id: str) -> JobRecord:
        """What is stored, read in one round trip; a job whose worker is gone is ended by the
        sweep (`sweep`), never by a read."""
        records = self._records([job_id])
        if not records:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return records[0]

    def _records(self, job_ids: builtins.list[str]) -> builtins.list[JobRecord]:
        return [
            self._record(job_id, entry, self._meta(payload))
            for job_id, entry, payload in self.index.entries(job_ids, self._result_key)
        ]

    def _result_key(self, job_id: str) -> str:
        key: bytes = self.celery.backend.get_key_for_task(job_id)
        return key.decode()

    def _meta(self, payload: str | None) -> dict[str, Any]:
        if not payload:
            return {"status": "PENDING", "result": None}
        meta: dict[str, Any] = self.celery.backend.decode_result(payload)
        return meta

    def _cancel(self, job_id: str) -> JobRecord:
        record = self._get(job_id)
        if record.finished:
            raise Conflict(
                f"job {job_id!r} has already finished ({record.status}); "
                "only queued or running jobs can be cancelled"
            )
        fate = self.index.seal(job_id, "cancelled")
        if fate == "publishing":
            raise Conflict(f"job {job_id!r} is publishing its model and can no longer be cancelled")
        if fate == "cancelled":
            # A queued task is dropped when a worker receives it; a running one is killed.
            self.celery.control.revoke(job_id, terminate=True, signal="SIGTERM")
            self.index.close(job_id, "cancelled")
        return self._get(job_id)

    def _record(self, job_id: str, entry: dict[str, str], meta: dict[str, Any]) -> JobRecord:
        spec = JobSpec.model_validate_json(entry["spec"])
        state, info = meta["status"], meta.get("result")
        report: dict[str, Any] = info if isinstance(info, dict) else {}
        fields: dict[str, Any] = {
            "job_id": job_id,
            "kind": spec.kind,
            "name": spec.name,
            "dataset": spec.dataset,
            "created_at": entry["created_at"],
            "started_at": report.get("started_at"),
            "progress": report.get("progress") or JobProgress(epochs=spec.epochs),
            "history": report.get("history", []),
        }
        if state == "SUCCESS":  # the task reported the job's outcome
            fields.update(
                status=report["status"],
                result=report.get("result"),
                error=report.get("error"),
                finished_at=report.get("finished_at"),
            )
        else:
            fields["status"] = _STATES.get(state, "queued")
            if state in ("FAILURE", "REVOKED"):
                fields["finished_at"] = meta.get("date_done")
            if state == "FAILURE":
                fields["error"] = failure_message(info)
        if "status" in entry:  # decided by an API process: cancelled, or its worker was lost
            fields.update(
                status=entry["status"],
                error=entry.get("error"),
                finished_at=entry["finished_at"],
                result=None,
            )
        return JobRecord.model_validate(fields)
