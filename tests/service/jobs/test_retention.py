"""Finished jobs are removed `job_retention_s` after they finished, from every store that holds
them: SQLite rows (local), and Celery results plus the job index (Redis). Reading a job never
changes it: a Celery job whose worker stopped beating is ended by the sweep."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from core.datasets import DatasetStore
from core.errors import JobNotFound
from core.jobs.records import INTERRUPTED, JobOutcome, JobSpec, utc_now
from core.settings import Settings
from service.jobs.celery.backend import CeleryBackend
from service.jobs.local.backend import LocalBackend
from service.jobs.sweeper import Sweeper
from tests.service.jobs.helpers import RedisServer

SPEC = JobSpec(name="kept", dataset="0" * 32, config={}, epochs=3)
HOUR = 3600.0


def test_local_records_older_than_the_retention_are_deleted(tmp_path: Path):
    settings = Settings(model_repository=tmp_path, job_retention_s=HOUR)
    backend = LocalBackend(settings)
    store = backend.store
    store.initialise()
    old, recent, queued = (store.insert(SPEC).job_id for _ in range(3))
    for job_id in (old, recent):
        store.finish(job_id, JobOutcome(status="succeeded"))
    with store._connect() as conn:  # finished two hours ago
        two_hours_ago = utc_now() - timedelta(hours=2)
        conn.execute(
            "UPDATE jobs SET finished_at = ? WHERE job_id = ?", (two_hours_ago.isoformat(), old)
        )

    Sweeper(backend, DatasetStore(settings.datasets_path), settings).sweep()

    assert [r.job_id for r in backend.list(10)] == [queued, recent]
    with pytest.raises(JobNotFound):
        backend.get(old)
    assert backend.counts() == {"queued": 1, "succeeded": 1}


def test_without_retention_local_records_are_kept(tmp_path: Path):
    settings = Settings(model_repository=tmp_path, job_retention_s=None)
    backend = LocalBackend(settings)
    backend.store.initialise()
    job_id = backend.store.insert(SPEC).job_id
    backend.store.finish(job_id, JobOutcome(status="failed", error="x"))
    assert backend.sweep(None) == 0
    assert backend.get(job_id).status == "failed"


# -- Celery: a real Redis, no worker (what a worker writes is written here) ---------------------


@pytest.fixture
def celery(redis_server: RedisServer, tmp_path: Path) -> Iterator[CeleryBackend]:
    url = redis_server.url(15)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(
        model_repository=tmp_path, job_backend="celery", broker_url=url, job_retention_s=HOUR
    )
    backend = CeleryBackend(settings)
    yield backend
    backend.stop()


def finish(backend: CeleryBackend, job_id: str, finished_at: float) -> None:
    """Store the result a worker's task returns for a job that succeeded at `finished_at`."""
    when = datetime.fromtimestamp(finished_at, UTC).isoformat()
    report = {"status": "succeeded", "progress": {"epoch": 3, "epochs": 3}, "finished_at": when}
    backend.celery.backend.store_result(job_id, report, "SUCCESS")


def test_celery_results_expire_and_old_jobs_leave_the_index(celery: CeleryBackend):
    client = celery.index.client
    old, recent, queued = (celery.submit(SPEC).job_id for _ in range(3))
    now = time.time()
    finish(celery, old, now - 2 * HOUR)
    finish(celery, recent, now - 60)
    # Celery's own result_expires: the result key expires a retention after it was written.
    ttl = client.ttl(celery._result_key(old))
    assert HOUR - 60 < ttl <= HOUR

    removed = celery.sweep(datetime.fromtimestamp(now - HOUR, UTC))

    assert removed == 1
    assert [r.job_id for r in celery.list(10)] == [queued, recent]
    with pytest.raises(JobNotFound):
        celery.get(old)
    assert not client.exists(f"aeserve:job:{old}", celery._result_key(old))
    assert client.zscore("aeserve:jobs", old) is None
    assert client.zscore("aeserve:jobs:finished", old) is None
    assert client.zscore("aeserve:jobs:finished", recent) is not None  # finished, kept
    assert celery.counts() == {"queued": 1, "succeeded": 1}


def test_reading_a_lost_celery_job_changes_nothing_the_sweep_ends_it(celery: CeleryBackend):
    client = celery.index.client
    job_id = celery.submit(SPEC).job_id
    # A worker started it (PROGRESS) and was killed: no heartbeat key.
    report = {"started_at": utc_now().isoformat(), "progress": {"epoch": 1, "epochs": 3}}
    celery.celery.backend.store_result(job_id, report, "PROGRESS")
    before = client.hgetall(f"aeserve:job:{job_id}")

    for _ in range(3):
        assert celery.get(job_id).status == "running"
        assert [r.status for r in celery.list(10)] == ["running"]
    assert client.hgetall(f"aeserve:job:{job_id}") == before

    celery.sweep(None)
    record = celery.get(job_id)
    assert (record.status, record.error) == ("failed", INTERRUPTED)
    assert client.hget(f"aeserve:job:{job_id}", "fate") == "lost"
    celery.sweep(None)  # the next sweep notes it finished
    assert client.zscore("aeserve:jobs:finished", job_id) is not None


def test_a_celery_job_with_a_heartbeat_is_left_running(celery: CeleryBackend):
    job_id = celery.submit(SPEC).job_id
    report = {"started_at": utc_now().isoformat(), "progress": {"epoch": 1, "epochs": 3}}
    celery.celery.backend.store_result(job_id, report, "PROGRESS")
    celery.index.heartbeat(job_id)
    celery.sweep(None)
    assert celery.get(job_id).status == "running"
