"""Two hosts that share no filesystem: each has its own working folder and model cache, one
`aeserve serve` and one `aeserve worker`; they share only an S3 API server (moto's, on loopback)
and Redis. Rows uploaded to host A are trained by host B's worker and served by A within two
polls; promotions raced from both hosts leave one pointer both follow; with the store stopped
for 10 s both keep scoring, a publish fails its job with words that say why, and all resumes.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import obstore
import pytest
from obstore.store import S3Store

from tests.deploy.test_topology import BIN, Topology, _free_port, _wait_for
from tests.s3_server import CREDENTIALS, S3Server
from tests.service.jobs.helpers import RedisServer

pytestmark = pytest.mark.slow

API_KEY = "object-storage-topology-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
POLL_S = 1.0
FEATURES = 6
SMALL = {"hidden_dims": [8], "latent_dim": 2}


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


class Host:
    """One machine: its own folder (the working directory and the cache), an API and a worker."""

    def __init__(self, root: Path, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.folder = root / name
        self.folder.mkdir()
        self.topology = Topology(self.folder)  # its processes start in this host's folder
        self.env = {**env, "AESERVE_CACHE_DIR": str(self.folder / "cache")}
        self.port = _free_port()
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def start_api(self) -> None:
        argv = [str(BIN / "aeserve"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.topology.start("api", argv, self.env)

    def start_worker(self) -> None:
        argv = [str(BIN / "aeserve"), "worker", "--concurrency", "1", "--log-level", "info"]
        process = self.topology.start("worker", argv, self.env)
        _wait_for(lambda: b" ready." in process.log.read_bytes(), 90, f"worker {self.name}")

    def model(self) -> dict[str, Any]:
        response = self.api.post("/score", json={"vectors": _rows(3, 7).tolist()})
        assert response.status_code == 200, response.text
        model: dict[str, Any] = response.json()["model"]
        return model

    def ready(self) -> bool:
        self.topology.assert_running()
        return self.api.get("/readyz").status_code == 200


def _job(host: Host, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        record: dict[str, Any] = host.api.get(f"/jobs/{job_id}", headers=AUTH).json()
        if record["status"] in ("succeeded", "failed", "cancelled"):
            return record
        assert time.monotonic() < deadline, f"job still {record['status']}"
        host.topology.assert_running()
        time.sleep(0.2)


def job_id_in(job_id: str, log: Path) -> bool:
    """Whether a worker's log names the job (Celery logs each task it receives by its id)."""
    return job_id.encode() in log.read_bytes()


def _pointer(s3: S3Server, bucket: str) -> int:
    """The active pointer as the store holds it."""
    store = S3Store(
        bucket,
        prefix="models",
        config={"endpoint": s3.endpoint, **{k.lower(): v for k, v in CREDENTIALS.items()}},
        client_options={"allow_http": True},
    )
    return int(bytes(obstore.get(store, "sensors/active").bytes()))


def test_two_hosts_share_only_the_store_and_redis(tmp_path: Path) -> None:
    s3 = S3Server(tmp_path / "moto.log")
    redis_server = RedisServer(tmp_path)
    hosts: list[Host] = []
    try:
        _run(hosts, tmp_path, s3, redis_server)
    except BaseException:
        for host in hosts:
            print(host.topology.logs())
        raise
    finally:
        for host in hosts:
            host.topology.stop()
        redis_server.stop()
        s3.stop()


def _run(hosts: list[Host], tmp_path: Path, s3: S3Server, redis_server: RedisServer) -> None:
    bucket = s3.bucket()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AESERVE_", "AWS_"))}
    env = {
        **inherited,
        **s3.env(),
        "AESERVE_MODEL_REPOSITORY": f"s3://{bucket}/models",
        "AESERVE_STORE_TIMEOUT_S": "1.5",
        "AESERVE_API_KEY": API_KEY,
        "AESERVE_JOB_BACKEND": "celery",
        "AESERVE_BROKER_URL": redis_server.url(0),
        "AESERVE_RELOAD_INTERVAL_S": str(POLL_S),
        "AESERVE_DEFAULT_MODEL": "sensors",
        "AESERVE_JOB_HEARTBEAT_TIMEOUT_S": "30",
    }
    a, b = (Host(tmp_path, name, env) for name in ("a", "b"))
    hosts += [a, b]

    # The first version, published by the command line from a third folder.
    seed_folder = tmp_path / "seed"
    seed_folder.mkdir()
    np.save(seed_folder / "seed.npy", _rows(256, 0))
    seeded = subprocess.run(
        [
            *(str(BIN / "aeserve"), "train", "seed.npy", "--name", "sensors", "--promote"),
            *("--epochs", "3", "--hidden-dims", "8", "--latent-dim", "2"),
        ],
        cwd=seed_folder,
        env={**env, "AESERVE_CACHE_DIR": str(seed_folder / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert f"written to s3://{bucket}/models/sensors/1" in seeded.stdout

    a.start_api()
    b.start_api()
    b.start_worker()  # A's worker joins later: this job can only run on host B
    for host in (a, b):
        _wait_for(host.ready, 90, f"host {host.name} ready")
        assert host.model() == {"name": "sensors", "version": 1}

    # -- rows uploaded to A, trained on B's worker, served by A within two polls ---------------
    buffer = io.BytesIO()
    np.save(buffer, _rows(256, 1))
    uploaded = a.api.post(
        "/datasets", files={"file": ("rows.npy", buffer.getvalue())}, headers=AUTH
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    dataset = uploaded.json()["dataset"]
    body = {
        "name": "sensors",
        "data": {"dataset": dataset},
        "config": {"epochs": 3, "seed": 1, **SMALL},
        "promote": True,
    }
    submitted = a.api.post("/train", json=body, headers=AUTH)
    assert submitted.status_code == 202, submitted.text
    record = _job(a, submitted.json()["job_id"])
    finished = time.monotonic()
    assert record["status"] == "succeeded", record
    assert record["result"]["model"] == {"name": "sensors", "version": 2}
    assert job_id_in(submitted.json()["job_id"], b.folder / "worker.log")
    # B's worker read the rows from the store into B's own folder, never from A's.
    assert list((b.folder / "cache" / ".datasets").glob(f"{dataset}.npy"))
    _wait_for(lambda: a.model()["version"] == 2, 2 * POLL_S + 1, "host A serving v2")
    assert time.monotonic() - finished <= 2 * POLL_S + 1
    _wait_for(lambda: b.model()["version"] == 2, 2 * POLL_S + 1, "host B serving v2")

    # -- promotions raced from both hosts: one pointer, both follow it ------------------------
    a.start_worker()
    for round_number in range(4):
        barrier = threading.Barrier(2)
        outcomes: dict[str, httpx.Response] = {}

        def promote(
            host: Host,
            version: int,
            barrier: threading.Barrier = barrier,
            outcomes: dict[str, httpx.Response] = outcomes,
        ) -> None:
            barrier.wait()
            outcomes[host.name] = host.api.post(
                f"/models/sensors/versions/{version}/promote", headers=AUTH
            )

        targets = {"a": 1, "b": 2} if round_number % 2 == 0 else {"a": 2, "b": 1}
        threads = [
            threading.Thread(target=promote, args=(host, targets[host.name])) for host in (a, b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = {name: response.status_code for name, response in outcomes.items()}
        assert set(statuses.values()) <= {200, 409}, {n: r.text for n, r in outcomes.items()}
        assert 200 in statuses.values()
        for response in outcomes.values():
            if response.status_code == 409:
                assert "changed while" in response.json()["detail"]
        pointer = _pointer(s3, bucket)
        winners = {targets[name] for name, status in statuses.items() if status == 200}
        assert pointer in winners
        for host in (a, b):
            _wait_for(
                lambda h=host, p=pointer: h.model()["version"] == p, 2 * POLL_S + 1, "convergence"
            )

    # -- the store stopped for 10 s -----------------------------------------------------------
    served = {host.name: host.model()["version"] for host in (a, b)}
    versions_before = a.api.get("/models/sensors").json()["versions"]
    long_job = {**body, "config": {"epochs": 40, "early_stopping_patience": 0, **SMALL}}
    job_id = b.api.post("/train", json=long_job, headers=AUTH).json()["job_id"]
    deadline = time.monotonic() + 120
    while b.api.get(f"/jobs/{job_id}", headers=AUTH).json()["progress"]["epoch"] < 1:
        assert time.monotonic() < deadline, "the job never started training"
        time.sleep(0.1)
    s3.pause()
    paused_at = time.monotonic()
    try:
        scores = 0
        job: dict[str, Any] = {}
        while time.monotonic() - paused_at < 10 or job.get("status") not in ("failed", "succeeded"):
            assert time.monotonic() - paused_at < 120, (
                "the job never ended while the store was down"
            )
            for host in (a, b):
                assert host.model()["version"] == served[host.name]
                scores += 1
            job = b.api.get(f"/jobs/{job_id}", headers=AUTH).json()
            time.sleep(0.2)
        assert scores >= 20
        assert job["status"] == "failed", job
        assert "did not answer" in job["error"] and "model store" in job["error"], job["error"]
        for host in (a, b):
            ready = host.api.get("/readyz")
            assert ready.status_code == 200
            assert "unreachable" in ready.json()["detail"], ready.json()
            assert "aeserve_model_store_reachable 0.0" in host.api.get("/metrics").text
    finally:
        s3.resume()

    for host in (a, b):
        _wait_for(
            lambda h=host: "unreachable" not in h.api.get("/readyz").json()["detail"],
            5 * POLL_S + 5,
            f"host {host.name} seeing the store again",
        )
        assert "aeserve_model_store_reachable 1.0" in host.api.get("/metrics").text
    # No half version: the failed publish left nothing visible.
    assert a.api.get("/models/sensors").json()["versions"] == versions_before
    other = 1 if served["a"] == 2 else 2
    assert a.api.post(f"/models/sensors/versions/{other}/promote", headers=AUTH).status_code == 200
    _wait_for(lambda: b.model()["version"] == other, 2 * POLL_S + 1, "host B after the outage")
