"""The real `aeserve serve` (uvicorn, two worker processes) over loopback HTTP, and a hot swap
under load: requests keep flowing while a new version is promoted, none fails, and every answer
after the reload interval comes from the new version."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow

ROW = [0.1, 0.2, 0.3, 0.4]
RELOAD_INTERVAL_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"aeserve serve exited with {process.returncode}"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} was not ready within {timeout} s")


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny", seed=0)
    return repository


@pytest.fixture
def server(repository: ModelRepository, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "AESERVE_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S),
        "AESERVE_DEFAULT_MODEL": "tiny",
    }
    aeserve = Path(sys.executable).with_name("aeserve")
    process = subprocess.Popen(
        [
            str(aeserve),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--repository",
            str(repository.root),
        ],
        env=env,
        stdout=(tmp_path / "serve.out").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_says_where_it_serves_from_and_where_the_docs_are(
    server: str, repository: ModelRepository, tmp_path: Path
):
    first_line = (tmp_path / "serve.out").read_text().splitlines()[0]
    assert first_line == (
        f"aeserve: serving {repository.root.resolve()} on {server} (interactive docs: "
        f"{server}/docs)"
    )


def test_serves_over_http_with_two_workers(server: str):
    with httpx.Client(base_url=server) as http:
        response = http.post("/score", json={"vectors": [ROW, ROW]})
        assert response.status_code == 200
        body = response.json()
        assert body["model"] == {"name": "tiny", "version": 1}
        assert len(body["scores"]) == 2
        assert http.get("/healthz").json() == {"status": "ok"}
        assert "aeserve_requests_total" in http.get("/metrics").text
        bad = http.post("/score", json={"vectors": [[1.0]]})
        assert bad.status_code == 422
        assert bad.json() == {"detail": "vectors: row 0 has 1 value; model 'tiny' v1 expects 4"}


def test_hot_swap_under_load(server: str, repository: ModelRepository):
    failures: list[str] = []
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def keep_scoring() -> None:
        with httpx.Client(base_url=server, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.post("/score", json={"vectors": [ROW]})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                    continue
                answers.append((time.monotonic(), response.json()["model"]["version"]))

    clients = [threading.Thread(target=keep_scoring) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(0.5)
    version = publish_tiny_model(repository, "tiny", seed=1, promote=False)
    repository.promote("tiny", version)
    promoted_at = time.monotonic()
    time.sleep(RELOAD_INTERVAL_S * 2 + 1.5)
    stop.set()
    for thread in clients:
        thread.join()

    assert failures == []
    before = [v for t, v in answers if t < promoted_at]
    settled = [v for t, v in answers if t > promoted_at + RELOAD_INTERVAL_S + 1.0]
    assert before and set(before) == {1}
    assert settled and set(settled) == {2}


# `aeserve serve` runs the API process in its own process: what the command line imports stays
# resident in every API process, so the other commands import their dependencies inside them.
NOT_SERVING = [
    "httpx",  # the client's, for `aeserve jobs` and `aeserve datasets`
    "service.client",
    "rich",  # the other commands' output
    "pygments",
    "websockets",  # uvicorn's WebSocket protocol: no route is a WebSocket
    "torch",
    "onnx",
    "models",
    "pyarrow",
    "celery",
    "redis",
]

# `aeserve ARGS` as the console script runs it, writing sys.modules to OUT on SIGUSR1.
RUN_AND_LIST_MODULES = """
import os, signal, sys
out = sys.argv[1]
def dump(*_):
    with open(out + ".part", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    os.replace(out + ".part", out)
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["aeserve", *sys.argv[2:]]
from service.cli import app
app()
"""


def test_the_serving_process_imports_none_of_the_other_commands_dependencies(
    repository: ModelRepository, tmp_path: Path
):
    port, out = free_port(), tmp_path / "modules.txt"
    command = [sys.executable, "-c", RUN_AND_LIST_MODULES, str(out), "serve", "--port", str(port)]
    command += ["--repository", str(repository.root), "--log-level", "warning"]
    process = subprocess.Popen(command, env={**os.environ, "AESERVE_DEFAULT_MODEL": "tiny"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        # What a request imports on its way counts too.
        assert httpx.post(f"{base}/score", json={"vectors": [ROW]}).status_code == 200
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=20)
    modules = out.read_text().split()
    assert {"service.main", "uvicorn", "onnxruntime"} <= set(modules)  # it did serve
    found = [m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NOT_SERVING)]
    assert found == []
