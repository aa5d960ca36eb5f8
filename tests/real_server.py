"""A real `aeserve serve` (uvicorn, its own process group) for tests that need the whole process:
its memory, its children, its death."""

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

AESERVE = Path(sys.executable).with_name("aeserve")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def peak_rss_bytes(self) -> int:
        """The server's resident-memory high-water mark (Linux's VmHWM) since it started."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")


@contextlib.contextmanager
def serve(repository: Path, log: Path, **env: str) -> Iterator[Served]:
    """`aeserve serve --repository <repository>` with `AESERVE_<NAME>` variables from `env`,
    ready when this yields; killed with its process group afterwards."""
    port = free_port()
    variables = {**os.environ, **{f"AESERVE_{name.upper()}": value for name, value in env.items()}}
    command = [str(AESERVE), "serve", "--port", str(port), "--repository", str(repository)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=variables, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"aeserve serve never became ready: {log}"
            time.sleep(0.1)
        yield Served(base, process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
