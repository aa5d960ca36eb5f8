"""kill -9 of the process that trains a job: the job ends failed, no version appears, and the API
keeps serving. Each backend gets a deployment of its own, since its worker does not survive."""

from __future__ import annotations

import os
import signal

import pytest
from fastapi.testclient import TestClient

from core.jobs.celery_index import JobIndex
from core.jobs.local_store import JobStore
from tests.service.jobs.conftest import BACKENDS, Deploy, Deployment, start_deployment
from tests.service.jobs.helpers import LONG, rows, submit, wait_for, wait_for_epoch
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow

ROW = [0.1, 0.2, 0.3, 0.4]


@pytest.fixture(params=BACKENDS)
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    deployment = start_deployment(request, deploy, request.param)
    publish_tiny_model(deployment.repository, "tiny")
    return deployment


def training_pid(deployment: Deployment, job_id: str) -> int:
    """Local: the job's own process. Celery: the pool process that took the job's message."""
    if deployment.kind == "local":
        running = {job.job_id: job for job in JobStore(deployment.settings.jobs_db_path).running()}
        pid = running[job_id].pid
        assert pid is not None
        return pid
    index = JobIndex.from_url(deployment.settings.broker_url, 1.0)
    started = index.entry(job_id)["started"]  # host:pid:token of the delivery that runs it
    index.client.close()
    return int(started.split(":")[1])


def assert_still_serving(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    response = client.post("/score?model=tiny", json={"vectors": [ROW]})
    assert response.status_code == 200, response.text


def test_killing_the_training_process_fails_the_job(client: TestClient, deployment: Deployment):
    job_id = submit(client, "killed", rows(n=300, seed=9), **LONG)
    wait_for_epoch(client, job_id, 2)
    pid = training_pid(deployment, job_id)
    if deployment.kind == "celery":
        assert pid in deployment.workers[0].pool_pids()
    os.kill(pid, signal.SIGKILL)

    record = wait_for(client, job_id, timeout=30)
    assert record["status"] == "failed"
    if deployment.kind == "local":  # its dispatcher saw the process die
        assert record["error"] == (
            "interrupted: the training process was killed (SIGKILL) before it finished"
        )
    else:  # Celery's WorkerLostError, or the missing heartbeat, whichever is seen first
        assert record["error"].startswith("interrupted: the ")
    assert "killed" not in deployment.repository.names()
    assert_still_serving(client)
    # The backend itself survived: the next job trains.
    assert wait_for(client, submit(client, "after", rows(seed=9), epochs=2))["status"] == (
        "succeeded"
    )


def test_killing_the_celery_worker_fails_the_job(request: pytest.FixtureRequest, deploy: Deploy):
    deployment = start_deployment(request, deploy, "celery")
    publish_tiny_model(deployment.repository, "tiny")
    with deployment.client() as client:
        job_id = submit(client, "worker-killed", rows(n=300, seed=10), **LONG)
        wait_for_epoch(client, job_id, 2)
        os.kill(deployment.workers[0].process.pid, signal.SIGKILL)

        # No worker is left to say so: the missing heartbeat does.
        record = wait_for(client, job_id, timeout=30)
        assert record["status"] == "failed"
        assert record["error"] == (
            "interrupted: the process that ran this job stopped before it finished"
        )
        assert "worker-killed" not in deployment.repository.names()
        assert_still_serving(client)
