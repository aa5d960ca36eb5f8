"""The processes that parse large bodies die with the API process: after a `kill -9` of the
server they lived on, reparented, holding their memory (seen after benchmark servers were
stopped)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from core.repository import ModelRepository
from tests.real_server import serve
from tests.tiny_model import publish_tiny_model


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_body_parser_dies_with_the_server(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    env = {"default_model": "tiny", "process_body_bytes": "1024", "inline_body_bytes": "1024"}
    with serve(repository.root, tmp_path / "serve.log", **env) as api:
        rows = {"vectors": [[0.1, 0.2, 0.3, 0.4]] * 200}  # about 4 KB: parsed in a process
        assert httpx.post(f"{api.base}/score", json=rows, timeout=30).status_code == 200
        parsers = _children(api.process.pid)
        assert parsers, "no parsing process was started"
        os.kill(api.process.pid, signal.SIGKILL)
        api.process.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in parsers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in parsers if _alive(pid)]
