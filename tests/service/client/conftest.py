"""A real `aeserve serve` (uvicorn, the local job backend) for the client tests, with a tiny
model published and an API key set."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model

API_KEY = "client-key-123"
AESERVE = Path(sys.executable).with_name("aeserve")
NAMES = ["age", "pulse", "pressure", "oxygen"]


@dataclass(frozen=True)
class Server:
    url: str
    repository: ModelRepository
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(root: Path, log: Path, **env: str) -> Iterator[str]:
    """`aeserve serve` in its own process group, ready when this yields; killed afterwards."""
    port = free_port()
    variables = {**os.environ, **{f"AESERVE_{k.upper()}": v for k, v in env.items()}}
    command = [str(AESERVE), "serve", "--port", str(port), "--repository", str(root)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=variables, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"aeserve serve never became ready: {log}"
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("client") / "repository"
    repository = ModelRepository(root)
    publish_tiny_model(repository, "tiny")  # v1, active
    publish_tiny_model(repository, "tiny", seed=3, feature_names=NAMES, promote=False)  # v2
    log = root.parent / "server.log"
    with serve(
        root,
        log,
        api_key=API_KEY,
        default_model="tiny",
        reload_interval_s="0.2",
        max_body_bytes="2000000",
    ) as url:
        yield Server(url, repository, log)
