"""What only the local backend has to show: several dispatchers (one per API worker process)
share one SQLite file and still run each job once, in order; a restart fails the jobs that a dead
server left running; a cancellation waits for its job without holding a thread."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from core.datasets import DatasetStore
from core.jobs.local_store import JobStore
from core.jobs.records import JobRecord, JobSpec
from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from service.jobs import cancelling
from service.jobs.local.backend import LocalBackend
from service.jobs.schemas import TrainRequest
from service.jobs.submission import prepare
from tests.service.jobs.helpers import max_overlap, rows


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        model_repository=tmp_path / "repository",
        max_concurrent_jobs=1,
        job_heartbeat_timeout_s=2.0,
    )


def spec(settings: Settings, name: str = "shared", **config: object) -> JobSpec:
    request = TrainRequest.model_validate(
        {"name": name, "data": {"vectors": rows(n=30, d=4)}, "config": {"epochs": 2, **config}}
    )
    repository = ModelRepository(settings.model_repository)
    return prepare(request, DatasetStore(settings.datasets_path), repository)


def wait_all(backend: LocalBackend, job_ids: list[str], timeout: float = 60) -> list[JobRecord]:
    deadline = time.monotonic() + timeout
    while True:
        records = [backend.get(job_id) for job_id in job_ids]
        if all(record.finished for record in records):
            return records
        assert time.monotonic() < deadline, records
        time.sleep(0.1)


@pytest.mark.slow
def test_two_dispatchers_run_each_job_once_in_submission_order(settings: Settings):
    first, second = LocalBackend(settings), LocalBackend(settings)
    first.start()
    second.start()
    try:
        job_ids = [backend.submit(spec(settings)).job_id for backend in (first, second, first)]
        records = wait_all(second, job_ids)
    finally:
        first.stop()
        second.stop()

    assert [r.status for r in records] == ["succeeded"] * 3
    assert [r.result.model.version for r in records if r.result] == [1, 2, 3]
    assert ModelRepository(settings.model_repository).versions("shared") == [1, 2, 3]
    started = [r.started_at for r in records]
    assert started == sorted(started)
    dumped = [r.model_dump(mode="json") for r in records]
    assert max_overlap(dumped) == 1


def test_a_restart_fails_the_jobs_a_dead_server_left_running(settings: Settings):
    store = JobStore(settings.jobs_db_path)
    store.initialise()
    job_id = store.insert(spec(settings)).job_id
    queued_id = store.insert(spec(settings)).job_id
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert store.claim_next(f"{socket.gethostname()}:{dead.pid}:0000", 1) == job_id

    backend = LocalBackend(settings.model_copy(update={"max_concurrent_jobs": 1}))
    backend.start()
    try:
        record = backend.get(job_id)
        assert record.status == "failed"
        assert record.error == (
            "interrupted: the process that ran this job stopped before it finished"
        )
        assert record.finished_at is not None
        # The queued job survived the restart and runs now.
        assert wait_all(backend, [queued_id])[0].status == "succeeded"
    finally:
        backend.stop()


def test_a_job_whose_heartbeat_stops_is_given_up(settings: Settings):
    store = JobStore(settings.jobs_db_path)
    store.initialise()
    job_id = store.insert(spec(settings)).job_id
    assert store.claim_next("another-machine:1:0000", 1) == job_id

    backend = LocalBackend(settings.model_copy(update={"max_concurrent_jobs": 2}))
    backend.start()
    try:
        assert backend.get(job_id).status == "running"  # its heartbeat is still fresh
        record = wait_all(backend, [job_id], timeout=10)[0]
    finally:
        backend.stop()
    assert record.status == "failed"
    assert record.error is not None and record.error.startswith("interrupted")


def test_a_cancellation_waiting_for_its_job_holds_no_thread(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """DELETE /jobs/{id} waited in a `time.sleep` loop in FastAPI's threadpool; with its one
    thread taken, GET /jobs/{id} (a synchronous route) waited until the cancellation gave up."""
    monkeypatch.setattr(cancelling, "CANCEL_WAIT_S", 3.0)
    settings = Settings(
        model_repository=settings.model_repository,
        max_concurrent_jobs=1,
        job_heartbeat_timeout_s=60,
        api_key="cancel-key",
    )
    auth = {"Authorization": "Bearer cancel-key"}
    store = JobStore(settings.jobs_db_path)
    store.initialise()
    job_id = store.insert(spec(settings)).job_id
    # Running on another machine, beating: nothing here stops it within the wait.
    assert store.claim_next("another-machine:1:0000", 1) == job_id
    with TestClient(create_app(settings)) as client:
        client.portal.call(_one_thread)  # type: ignore[union-attr]
        answers: list[int] = []
        cancelling_thread = threading.Thread(
            target=lambda: answers.append(
                client.delete(f"/jobs/{job_id}", headers=auth).status_code
            )
        )
        cancelling_thread.start()
        time.sleep(0.5)  # the cancellation is waiting for the job to stop
        assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == "running"
        assert cancelling_thread.is_alive()
        cancelling_thread.join()
    assert answers == [200]


async def _one_thread() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = 1
