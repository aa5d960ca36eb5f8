"""Processes and polling for the job tests: a real redis-server, real `aeserve worker`s."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

API_KEY = "jobs-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
AESERVE = Path(sys.executable).with_name("aeserve")
FINISHED = {"succeeded", "failed", "cancelled"}
HEARTBEAT_TIMEOUT_S = 3.0
LONG = {"epochs": 100_000, "early_stopping_patience": 0}
"""A config that trains until it is stopped."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rows(n: int = 60, d: int = 6, seed: int = 0) -> list[list[float]]:
    """Correlated rows (a rank-2 signal plus noise): something an autoencoder can learn."""
    rng = np.random.default_rng(seed)
    signal_part = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d))
    data = signal_part + 0.1 * rng.normal(size=(n, d))
    return np.round(data, 4).tolist()


def submit(client: TestClient, name: str, data: list[list[float]], **config: Any) -> str:
    body = {"name": name, "data": {"vectors": data}, "config": config}
    response = client.post("/train", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_for(
    client: TestClient, job_id: str, until: set[str] = FINISHED, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = client.get(f"/jobs/{job_id}", headers=AUTH).json()
        if record["status"] in until:
            return record
        assert time.monotonic() < deadline, f"job still {record['status']}: {record}"
        time.sleep(0.1)


def wait_for_epoch(client: TestClient, job_id: str, epoch: int = 1) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        record: dict[str, Any] = client.get(f"/jobs/{job_id}", headers=AUTH).json()
        if record["progress"]["epoch"] >= epoch:
            return record
        assert record["status"] in ("queued", "running"), record
        assert time.monotonic() < deadline, f"job never reached epoch {epoch}: {record}"
        time.sleep(0.05)


def max_overlap(records: list[dict[str, Any]]) -> int:
    """Most jobs that ran at the same time, from their started/finished times."""
    edges = []
    for record in records:
        edges.append((datetime.fromisoformat(record["started_at"]), 1))
        edges.append((datetime.fromisoformat(record["finished_at"]), -1))
    running = most = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += change
        most = max(most, running)
    return most


# -- Redis and Celery workers -------------------------------------------------------------------


class RedisServer:
    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed (.ci/run installs it)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Worker:
    """`aeserve worker` in its own process group, so teardown also ends its pool processes."""

    def __init__(self, broker_url: str, repository: Path, concurrency: int, log: Path) -> None:
        env = {
            **os.environ,
            "AESERVE_BROKER_URL": broker_url,
            "AESERVE_MODEL_REPOSITORY": str(repository),
            "AESERVE_JOB_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
        }
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(AESERVE), "worker", "--concurrency", str(concurrency), "--log-level", "info"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"worker not ready:\n{log.read_text()}"
            time.sleep(0.1)

    def pool_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
