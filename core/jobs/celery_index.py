"""The job index in Redis: what Celery cannot tell, shared by every API replica and worker.

Celery's result store knows a task's state by id but cannot list tasks, and has no place for a
job's name or submission time, nor for the rule that a cancelled job must never publish. Keys:

- `aeserve:jobs`: sorted set of job ids by submission time (the listing, newest first);
- `aeserve:job:<id>`: hash with `spec`, `created_at`, `fate` (set once: cancelled, publishing or
  lost), `started` (which delivery of the task runs it) and, once an API process has decided how
  the job ended without the task (cancelled, lost), `status`, `error` and `finished_at`;
- `aeserve:job:<id>:alive`: the training process's heartbeat, expiring after the timeout.
"""

from __future__ import annotations

from datetime import datetime

import redis

from core.errors import JobNotFound
from core.jobs.records import Fate, JobSpec, utc_now

_JOBS = "aeserve:jobs"


def _job(job_id: str) -> str:
    return f"aeserve:job:{job_id}"


def _alive(job_id: str) -> str:
    return f"aeserve:job:{job_id}:alive"


class JobIndex:
    def __init__(self, client: redis.Redis, heartbeat_timeout_s: float) -> None:
        self.client = client
        self.heartbeat_timeout_ms = max(1, round(heartbeat_timeout_s * 1000))

    @classmethod
    def from_url(cls, url: str, heartbeat_timeout_s: float) -> JobIndex:
        return cls(redis.Redis.from_url(url, decode_responses=True), heartbeat_timeout_s)

    def add(self, job_id: str, spec: JobSpec, created_at: datetime) -> None:
        pipe = self.client.pipeline()
        pipe.hset(_job(job_id), "spec", spec.model_dump_json())
        pipe.hset(_job(job_id), "created_at", created_at.isoformat())
        pipe.zadd(_JOBS, {job_id: created_at.timestamp()})
        pipe.execute()

    def entry(self, job_id: str) -> dict[str, str]:
        fields: dict[str, str] = self.client.hgetall(_job(job_id))  # type: ignore[assignment]
        if not fields:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return fields

    def newest(self, limit: int) -> list[str]:
        ids: list[str] = self.client.zrevrange(_JOBS, 0, limit - 1)  # type: ignore[assignment]
        return ids

    def fate(self, job_id: str) -> Fate | None:
        fate: Fate | None = self.client.hget(_job(job_id), "fate")  # type: ignore[assignment]
        return fate

    def seal(self, job_id: str, fate: Fate) -> Fate | None:
        """Set the fate unless one is set (HSETNX is atomic); return the fate that holds."""
        self.client.hsetnx(_job(job_id), "fate", fate)
        return self.fate(job_id)

    def claim_start(self, job_id: str, delivery: str) -> bool:
        """True for the first delivery of the job's message to start it, False for a repeat."""
        return bool(self.client.hsetnx(_job(job_id), "started", delivery))

    def heartbeat(self, job_id: str) -> None:
        self.client.set(_alive(job_id), "1", px=self.heartbeat_timeout_ms)

    def alive(self, job_id: str) -> bool:
        return bool(self.client.exists(_alive(job_id)))

    def close(self, job_id: str, status: str, error: str | None = None) -> bool:
        """Record how a job ended when its task cannot; the first verdict stands."""
        if not self.client.hsetnx(_job(job_id), "status", status):
            return False
        pipe = self.client.pipeline()
        pipe.hset(_job(job_id), "finished_at", utc_now().isoformat())
        if error is not None:
            pipe.hset(_job(job_id), "error", error)
        pipe.execute()
        return True
