"""The job index in Redis: what Celery cannot tell, shared by every API replica and worker.

Celery's result store knows a task's state by id but cannot list tasks, and has no place for a
job's name or submission time, nor for the rule that a cancelled job must never publish. Keys:

- `aeserve:jobs`: sorted set of job ids by submission time (the listing, newest first);
- `aeserve:jobs:finished`: sorted set of the jobs an API process's sweep saw finished, by when
  they finished: the others are the unfinished ones, and the oldest here are removed first;
- `aeserve:job:<id>`: hash with `spec`, `created_at`, `fate` (set once: cancelled, publishing or
  lost), `started` (which delivery of the task runs it) and, once an API process has decided how
  the job ended without the task (cancelled, lost), `status`, `error` and `finished_at`;
- `aeserve:job:<id>:alive`: the training process's heartbeat, expiring after the timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import redis
from redis.lock import Lock

from core.errors import JobNotFound
from core.jobs.records import Fate, JobSpec, utc_now

_JOBS = "aeserve:jobs"
_FINISHED = "aeserve:jobs:finished"
BATCH = 200
"""Jobs read per pipeline: one round trip each."""
# KEYS[1]: the job's hash; ARGV: status, finished_at[, error]. 1 if this verdict was recorded.
_CLOSE = """
if redis.call('HSETNX', KEYS[1], 'status', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
if ARGV[3] then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
return 1
"""


def _job(job_id: str) -> str:
    return f"aeserve:job:{job_id}"


def _alive(job_id: str) -> str:
    return f"aeserve:job:{job_id}:alive"


class JobIndex:
    def __init__(self, client: redis.Redis, heartbeat_timeout_s: float) -> None:
        self.client = client
        self.heartbeat_timeout_ms = max(1, round(heartbeat_timeout_s * 1000))
        self._close = client.register_script(_CLOSE)

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

    def entries(
        self, job_ids: list[str], result_key: Callable[[str], str]
    ) -> Iterator[tuple[str, dict[str, str], str | None]]:
        """Each job's hash and its result (`result_key(job_id)`), a pipelined batch at a time;
        ids with no hash (removed meanwhile) are left out."""
        for start in range(0, len(job_ids), BATCH):
            batch = job_ids[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            for job_id in batch:
                pipe.hgetall(_job(job_id))
                pipe.get(result_key(job_id))
            replies = pipe.execute()
            for i, job_id in enumerate(batch):
                if replies[2 * i]:
                    yield job_id, replies[2 * i], replies[2 * i + 1]

    def unsettled(self) -> list[str]:
        """Jobs not yet seen finished by a sweep: the unfinished ones, and a few just finished."""
        ids: list[str] = self.client.zdiff([_JOBS, _FINISHED])  # type: ignore[assignment]
        return ids

    def alive_many(self, job_ids: list[str]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(_alive(job_id))
        return [bool(n) for n in pipe.execute()]

    def settle(self, finished_at: dict[str, float]) -> None:
        """Note jobs as finished, at these times (seconds since the epoch)."""
        if finished_at:
            self.client.zadd(_FINISHED, finished_at)

    def remove_finished_before(self, cutoff: float, result_key: Callable[[str], str]) -> int:
        """Remove the jobs that finished before `cutoff`: index entries and Celery results."""
        ids: list[str] = self.client.zrangebyscore(_FINISHED, "-inf", f"({cutoff}")  # type: ignore[assignment]
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(_JOBS, *batch)
            pipe.zrem(_FINISHED, *batch)
            pipe.delete(*[_job(job_id) for job_id in batch])
            pipe.delete(*[result_key(job_id) for job_id in batch])
            pipe.execute()
        return len(ids)

    def lock(self, name: str, timeout_s: float) -> Lock:
        """A lock every API replica sees; it expires if its holder dies."""
        return Lock(
            self.client, f"aeserve:lock:{name}", timeout=timeout_s, blocking_timeout=timeout_s
        )

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
        """Record how a job ended when its task cannot; the first verdict stands. Written in
        one step (a script Redis runs whole): a reader never sees `status` without
        `finished_at`, which it read in between and answered 500."""
        args = [status, utc_now().isoformat(), *([error] if error is not None else [])]
        return bool(self._close(keys=[_job(job_id)], args=args))
