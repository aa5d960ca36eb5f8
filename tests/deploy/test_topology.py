"""The compose topology as plain processes: Redis, one `aeserve worker`, two `aeserve serve`.

Everything is wired as docker-compose.yml wires it: the commands and the environment are read
from that file, and only what differs between containers and one host is replaced (loopback
addresses, free ports, a temporary repository folder shared by all three processes, a short
reload interval). A model is trained through API 1 with the API key; both APIs must then answer
with the new version within the reload interval.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from tests.deploy.parsing import Dockerfile, compose_default

pytestmark = pytest.mark.slow

API_KEY = "topology-test-key"
RELOAD_INTERVAL_S = 1.0
BIN = Path(sys.executable).parent
FEATURES = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.TransportError, redis.exceptions.ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]


class Topology:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def assert_running(self) -> None:
        exited = [p.name for p in self.processes if p.popen.poll() is not None]
        assert exited == [], f"exited early: {exited}"

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def stop(self) -> None:
        # Each process leads its own session: signal its group, so uvicorn's and Celery's
        # children go with it.
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait(timeout=10)


def _replace(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def _host_argv(argv: list[str]) -> list[str]:
    """A compose command with its `${VAR:-default}` defaults, run from this environment's bin."""
    words = [compose_default(word) for word in argv]
    return [str(BIN / words[0]), *words[1:]]


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    running = Topology(tmp_path)
    yield running
    running.stop()


def _compose_environment(
    services: dict[str, dict[str, Any]], repository: Path, broker_url: str
) -> dict[str, str]:
    """The api service's environment, with the host's paths and addresses in place of the
    containers'."""
    api_env, worker_env = (
        {k: compose_default(str(v)) for k, v in services[name]["environment"].items()}
        for name in ("api", "worker")
    )
    assert api_env == worker_env
    host_values = {
        "AESERVE_MODEL_REPOSITORY": str(repository),
        "AESERVE_API_KEY": API_KEY,
        "AESERVE_BROKER_URL": broker_url,
        "AESERVE_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S),
        "AESERVE_DEFAULT_MODEL": "sensors",
    }
    assert set(host_values) <= set(api_env)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AESERVE_")}
    return {**inherited, **api_env, **host_values}


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def _ready(topology: Topology, api: httpx.Client) -> bool:
    topology.assert_running()
    return api.get("/readyz").status_code == 200


def _score_model(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/score", json={"vectors": _rows(3, 7).tolist()})
    assert response.status_code == 200, response.text
    model: dict[str, Any] = response.json()["model"]
    return model


def test_train_through_one_replica_serve_from_both(
    topology: Topology,
    tmp_path: Path,
    services: dict[str, dict[str, Any]],
    dockerfile: Dockerfile,
) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")

    # Redis as the `redis` service runs it, on a free loopback port, its files in tmp_path.
    redis_port = _free_port()
    redis_options = services["redis"]["command"][1:]
    redis_options += ["--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    topology.start("redis", [redis_server, *redis_options], dict(os.environ))
    broker_url = f"redis://127.0.0.1:{redis_port}/0"
    with redis.Redis.from_url(broker_url) as broker:
        _wait_for(lambda: bool(broker.ping()), 20, "redis-server")

    repository = tmp_path / "model-repository"
    env = _compose_environment(services, repository, broker_url)

    # Seed the shared repository with the CLI, as `make default-model` does.
    np.save(tmp_path / "seed.npy", _rows(256, 0))
    seed_command = ["train", str(tmp_path / "seed.npy"), "--name", "sensors", "--promote"]
    seed_command += ["--epochs", "3", "--hidden-dims", "8", "--latent-dim", "2"]
    seeded = subprocess.run(
        [str(BIN / "aeserve"), *seed_command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    topology.start("worker", _host_argv(services["worker"]["command"]), env)
    api_ports = [_free_port(), _free_port()]
    for number, port in enumerate(api_ports, start=1):
        argv = _replace(_host_argv(services["api"]["command"]), "--host", "127.0.0.1")
        topology.start(f"api{number}", _replace(argv, "--port", str(port)), env)
    api1, api2 = (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in api_ports
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}

    try:
        for api in (api1, api2):
            _wait_for(lambda api=api: _ready(topology, api), 60, f"{api.base_url}/readyz")
            assert _score_model(api) == {"name": "sensors", "version": 1}

        # The health checks of the image and of the compose file pass against a live API.
        probe = dockerfile.last("serve", "HEALTHCHECK").exec_form()
        image_check = subprocess.run(
            [str(BIN / "python"), *probe[1:]],
            env={**env, "AESERVE_PORT": str(api_ports[0])},
            timeout=30,
        )
        assert image_check.returncode == 0
        compose_probe = services["api"]["healthcheck"]["test"][1:]
        compose_probe = [w.replace(":8000/", f":{api_ports[1]}/") for w in compose_probe]
        assert subprocess.run([str(BIN / "python"), *compose_probe[1:]], timeout=30).returncode == 0

        body = {
            "name": "sensors",
            "data": {"vectors": _rows(256, 1).tolist()},
            "config": {"epochs": 3, "hidden_dims": [8], "latent_dim": 2, "seed": 1},
            "promote": True,
        }
        assert api1.post("/train", json=body).status_code == 401
        submitted = api1.post("/train", json=body, headers=auth)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        assert submitted.json()["status"] == "queued"
        assert submitted.headers["location"] == f"/jobs/{job_id}"

        # Celery keeps job state in Redis, so either replica answers for the job.
        def finished() -> bool:
            topology.assert_running()
            statuses = {
                api.get(f"/jobs/{job_id}", headers=auth).json()["status"] for api in (api1, api2)
            }
            assert not statuses & {"failed", "cancelled"}, statuses
            return statuses == {"succeeded"}

        _wait_for(finished, 120, f"job {job_id}")
        seen_done = time.monotonic()
        for api in (api1, api2):
            job = api.get(f"/jobs/{job_id}", headers=auth).json()
            assert job["result"]["model"] == {"name": "sensors", "version": 2}
            assert job["error"] is None

        # Within the reload interval every uvicorn worker of both replicas serves version 2.
        time.sleep(max(0.0, seen_done + RELOAD_INTERVAL_S + 1.0 - time.monotonic()))
        for api in (api1, api2):
            answered = [_score_model(api) for _ in range(12)]
            assert answered == [{"name": "sensors", "version": 2}] * 12
            assert api.get("/readyz").status_code == 200
            metrics = api.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert 'aeserve_model_loaded_version{model="sensors"} 2.0' in metrics.text
            assert "aeserve_requests_total{" in metrics.text
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{topology.logs()}") from failure
    finally:
        api1.close()
        api2.close()
