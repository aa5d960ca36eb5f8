"""kill -9 of the API process that supervises a local training job: the training process dies
with it within seconds (PR_SET_PDEATHSIG), mid-epoch, and publishes nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from core.jobs.local_store import JobStore
from core.repository import ModelRepository
from tests.real_server import serve
from tests.service.jobs.helpers import API_KEY, AUTH, rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc"),
]

SLOW_EPOCHS = {
    "epochs": 100_000,
    "early_stopping_patience": 0,
    "batch_size": 1,
    "max_rows_per_epoch": None,  # tens of thousands of steps an epoch: a check once an epoch
    "hidden_dims": [64, 32],  # (the watchdog's) would let it train on for many seconds
}


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for init to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def training_pid(db: Path, job_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {job.job_id: job for job in JobStore(db).running()}
        job = jobs.get(job_id)
        if job is not None and job.pid is not None:
            return job.pid
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never started training")


def test_the_training_process_dies_with_the_server(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    with serve(root, tmp_path / "serve.log", api_key=API_KEY) as served:
        body = {"name": "orphan", "data": {"vectors": rows(n=40_000)}, "config": SLOW_EPOCHS}
        response = httpx.post(f"{served.base}/train", json=body, headers=AUTH, timeout=60)
        assert response.status_code == 202, response.text
        pid = training_pid(root / ".jobs.sqlite", response.json()["job_id"])
        time.sleep(2.0)  # well into its first epoch
        assert running(pid)

        os.kill(served.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(pid), "the training process outlived the server that supervised it"
    assert "orphan" not in ModelRepository(root).names()
