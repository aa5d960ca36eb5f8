"""The real `aeserve serve` with the local backend: events arrive over HTTP while the job trains;
after kill -9 of the whole server (API and training process) a restart fails the job,
"interrupted", with no version published; with two worker processes, each job runs once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.service.jobs.helpers import AESERVE, API_KEY, AUTH, LONG, free_port, max_overlap, rows
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    return repository


@pytest.fixture(params=[1])
def server(
    request: pytest.FixtureRequest, repository: ModelRepository
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "AESERVE_API_KEY": API_KEY,
        "AESERVE_DEFAULT_MODEL": "tiny",
        "AESERVE_MAX_CONCURRENT_JOBS": "2",
    }
    command = [str(AESERVE), "serve", "--port", str(port), "--workers", str(request.param)]
    command += ["--model-repository", str(repository.root)]
    # Its own process group: kill -9 of the group takes the training process down with it.
    process = subprocess.Popen(command, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "aeserve serve exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "aeserve serve never became ready"
        time.sleep(0.1)
    yield base, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def read_events(stream: httpx.Response, count: int) -> list[tuple[str, dict]]:
    """The first `count` events, read as they arrive."""
    events: list[tuple[str, dict]] = []
    fields: dict[str, str] = {}
    for line in stream.iter_lines():
        if line.startswith(":"):  # a keep-alive comment, sent while an epoch takes long
            continue
        if line:
            key, _, value = line.partition(": ")
            fields[key] = value
            continue
        if not fields:  # the blank line after a comment
            continue
        events.append((fields["event"], json.loads(fields["data"])))
        fields = {}
        if len(events) == count:
            break
    return events


def test_events_arrive_while_training_and_a_killed_server_fails_the_job_on_restart(
    server: tuple[str, subprocess.Popen[bytes]], repository: ModelRepository
):
    base, process = server
    with httpx.Client(base_url=base, timeout=30) as http:
        body = {"name": "doomed", "data": {"vectors": rows(n=2000, seed=11)}, "config": LONG}
        response = http.post("/train", json=body, headers=AUTH)
        assert response.status_code == 202
        job_id = response.json()["job_id"]

        with http.stream("GET", f"/jobs/{job_id}/events", headers=AUTH) as stream:
            events = read_events(stream, 3)
        assert [(name, data["epoch"]) for name, data in events] == [
            ("progress", 1),
            ("progress", 2),
            ("progress", 3),
        ]
        # One at a time as epochs end, not all at once when the job is done (it never is).
        assert http.get(f"/jobs/{job_id}", headers=AUTH).json()["status"] == "running"

    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    settings = Settings(model_repository=repository.root, default_model="tiny")
    with TestClient(create_app(settings)) as client:
        record = client.get(f"/jobs/{job_id}", headers=AUTH).json()
        assert record["status"] == "failed"
        assert record["error"] == (
            "interrupted: the process that ran this job stopped before it finished"
        )
        assert "doomed" not in repository.names()
        assert client.post("/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).status_code == 200


@pytest.mark.parametrize("server", [2], indirect=True)
def test_two_worker_processes_run_each_job_once(
    server: tuple[str, subprocess.Popen[bytes]], repository: ModelRepository
):
    base, _ = server
    with httpx.Client(base_url=base, timeout=30) as http:
        body = {"name": "shared", "data": {"vectors": rows(n=40, d=4)}, "config": {"epochs": 2}}
        job_ids = [http.post("/train", json=body, headers=AUTH).json()["job_id"] for _ in range(6)]
        deadline = time.monotonic() + 120
        while True:
            records = [http.get(f"/jobs/{job_id}", headers=AUTH).json() for job_id in job_ids]
            if all(r["status"] in ("succeeded", "failed", "cancelled") for r in records):
                break
            assert time.monotonic() < deadline, records
            time.sleep(0.2)
    assert [r["status"] for r in records] == ["succeeded"] * 6
    assert sorted(r["result"]["model"]["version"] for r in records) == [1, 2, 3, 4, 5, 6]
    assert repository.versions("shared") == [1, 2, 3, 4, 5, 6]
    assert max_overlap(records) <= 2
