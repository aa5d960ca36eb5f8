"""A real S3 API server on loopback for the object-storage tests: moto's server (`moto[server]`,
in the dev extra) as its own process, one bucket per test."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.service.jobs.helpers import free_port

MOTO = Path(sys.executable).with_name("moto_server")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "aeserve-test",
    "AWS_SECRET_ACCESS_KEY": "aeserve-test-secret",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """`moto_server` on a free port. `pause()` stops the process (SIGSTOP) until `resume()`:
    the store stops answering but keeps its data (moto keeps it in memory)."""

    def __init__(self, log: Path) -> None:
        if not MOTO.is_file() and shutil.which("moto_server") is None:
            pytest.skip("moto_server is not installed (pip install 'moto[server]', the dev extra)")
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> None:
        command = [str(MOTO) if MOTO.is_file() else "moto_server", "-H", "127.0.0.1"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def bucket(self) -> str:
        name = f"aeserve-{uuid.uuid4().hex[:12]}"
        response = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        assert response.status_code == 200, response.text
        return name
