"""The Celery job index in a real Redis: a job's ending is written whole, never seen in part."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import redis

from core.jobs.celery_index import JobIndex
from core.jobs.records import JobSpec
from tests.service.jobs.helpers import RedisServer

SPEC = JobSpec(name="m", dataset="ds_1", config={}, promote=False, epochs=1)


def test_a_closed_job_is_never_read_without_its_end_time(redis_server: RedisServer) -> None:
    """GET /jobs/{id} read `status` set and `finished_at` not yet, and answered 500: `close`
    wrote the verdict, then the rest in a second round trip."""
    index = JobIndex(redis.Redis.from_url(redis_server.url(13), decode_responses=True), 30)
    torn: list[dict[str, str]] = []
    for _ in range(200):
        job_id = uuid.uuid4().hex
        index.add(job_id, SPEC, datetime.now(UTC))
        closed = threading.Event()

        def read(job_id: str = job_id, closed: threading.Event = closed) -> None:
            while not closed.is_set():
                entry = index.entry(job_id)
                if "status" in entry and "finished_at" not in entry:
                    torn.append(entry)

        reader = threading.Thread(target=read)
        reader.start()
        assert index.close(job_id, "failed", "interrupted: the worker was lost")
        assert not index.close(job_id, "cancelled")  # the first verdict stands
        closed.set()
        reader.join()
        entry = index.entry(job_id)
        assert entry["status"] == "failed" and entry["error"].startswith("interrupted")
        assert "finished_at" in entry
    assert torn == []
