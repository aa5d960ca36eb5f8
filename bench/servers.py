"""The servers under test: how each one starts, where it listens, and a check that it answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.prepare import ROOT, BenchModel, peer_python

PEERS_DIR = ROOT / "bench" / "peers"
PEER_MAX_BATCH = 64  # each peer's batcher bound, as close to aeserve's as its API allows
PEER_DELAY_S = 0.001


@dataclass
class Server:
    label: str
    command: list[str]
    env: dict[str, str]
    path: str
    body: str  # "json" or "v2": which request body it takes
    port: int
    batching: bool | None = None
    budget: int | None = None
    """Threads that may run onnxruntime at once (each session on one thread); None: as the peer
    runs it."""
    budget_note: str = ""  # how that budget is set
    ready_path: str | None = None  # a GET that answers 200 once the server can serve
    imports: list[str] = field(default_factory=list)  # the modules its process starts by importing
    error: str | None = None  # why it could not be started, when it could not
    cleanup: list[list[str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    ready_s: float | None = None  # from its start to its first correct answer, when it started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _base_env(model: BenchModel) -> dict[str, str]:
    return {
        "BENCH_MODEL": str(model.onnx),
        "BENCH_DIM": str(model.dim),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def naive(model: BenchModel, threads: int) -> Server:
    """The naive server with FastAPI's threadpool limited to `threads`: its endpoint, and so
    `session.run`, runs on at most that many threads at once."""
    port = free_port()
    command = [sys.executable, "-m", "bench.naive_server", str(model.onnx), str(port), str(threads)]
    label = f"naive FastAPI, {threads} thread{'s' if threads > 1 else ''}"
    server = Server(label, command, _base_env(model), "/score", "json", port, None, threads)
    server.budget_note = f"threadpool limited to {threads}"
    server.ready_path = "/readyz"
    server.imports = ["bench.naive_server"]
    return server


# The batcher's settings, explicit so that the results say what ran whatever the defaults become.
AESERVE_SETTINGS = {
    "AESERVE_INTRA_OP_THREADS": "1",
    "AESERVE_INTER_OP_THREADS": "1",
    "AESERVE_MAX_BATCH_ROWS": "256",
    "AESERVE_MAX_QUEUE_DELAY_US": "0",
    "AESERVE_MAX_QUEUED_ROWS": "2048",
    "AESERVE_REQUEST_TIMEOUT_S": "10",
}


def aeserve(
    model: BenchModel,
    repository: Path,
    batching: bool,
    batch_workers: int,
    workers: int = 1,
) -> Server:
    port = free_port()
    aeserve_bin = str(Path(sys.executable).parent / "aeserve")
    env = {
        **_base_env(model),
        **AESERVE_SETTINGS,
        "AESERVE_MODEL_REPOSITORY": str(repository),
        "AESERVE_DEFAULT_MODEL": model.name,
        "AESERVE_DYNAMIC_BATCHING": "true" if batching else "false",
        "AESERVE_BATCH_WORKERS": str(batch_workers),
    }
    command = [aeserve_bin, "serve", "--port", str(port), "--log-level", "warning"]
    command += ["--workers", str(workers)]
    label = f"aeserve, batching {'on' if batching else 'off'}, {batch_workers} batch worker"
    label += "s" if batch_workers > 1 else ""
    if workers > 1:
        label += f", --workers {workers}"
    budget = batch_workers * workers
    server = Server(label, command, env, "/score", "json", port, batching, budget)
    server.budget_note = f"batch_workers={batch_workers}" + (
        f" × {workers} processes" if workers > 1 else ""
    )
    server.ready_path = "/readyz"
    server.imports = ["service.cli", "service.main"]
    return server


PEER_BUDGETS = {
    "litserve": "one worker process (workers_per_device=1)",
    "bentoml": "one worker (workers=1), BentoML's own threads",
    "pytriton": "one model instance",
    "rayserve": "one replica, num_cpus=1",
}


def peer(name: str, model: BenchModel, batching: bool) -> Server:
    python = peer_python(name)
    port = free_port() if name != "pytriton" else 19000 + 10 * int(batching)
    env = {
        **_base_env(model),
        "BENCH_MAX_BATCH": str(PEER_MAX_BATCH if batching else 1),
        "BENCH_DELAY_S": str(PEER_DELAY_S),
    }
    labels = {
        "litserve": "LitServe",
        "bentoml": "BentoML",
        "pytriton": "Triton (PyTriton)",
        "rayserve": "Ray Serve",
    }
    label = f"{labels[name]}, batching {'on' if batching else 'off'}"
    script = str(PEERS_DIR / f"{name}_server.py")
    if name == "bentoml":
        command = [str(Path(str(python)).parent / "bentoml"), "serve", "bentoml_server:Scorer"]
        command += ["--port", str(port), "--host", "127.0.0.1"]
        path, body = "/score", "json"
    elif name == "pytriton":
        command = [str(python), script, str(port)]
        path, body = "/v2/models/ae/infer", "v2"
    else:
        command = [str(python), script, str(port)]
        path, body = ("/predict" if name == "litserve" else "/score"), "json"
    server = Server(label, command, env, path, body, port, batching, 1)
    server.budget_note = PEER_BUDGETS[name]
    if not isinstance(python, Path):
        server.error = python
    if name == "rayserve":
        server.cleanup.append([str(Path(str(python)).parent / "ray"), "stop", "--force"])
    return server


def _scores(answer: object) -> np.ndarray:
    """Scores out of any of the servers' answers (aeserve, naive, peers, KServe v2)."""
    if isinstance(answer, dict) and "outputs" in answer:
        return np.asarray(answer["outputs"][0]["data"], dtype=np.float64).reshape(-1)
    if isinstance(answer, dict):
        return np.asarray(answer["scores"], dtype=np.float64).reshape(-1)
    return np.asarray(answer, dtype=np.float64).reshape(-1)


def _post(server: Server, body: bytes) -> object:
    request = urllib.request.Request(
        server.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _start(server: Server, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            cwd=PEERS_DIR if "bentoml" in server.command[0] else ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def running(
    server: Server, body: Path, expected: np.ndarray, log: Path, timeout_s: float = 180
) -> Iterator[Server]:
    """The server, started in its own process group, answering `body` with `expected` scores.

    `server.ready_s` is the time from its start to that first correct answer.
    """
    started = time.monotonic()
    process = _start(server, log)
    server.process = process
    try:
        deadline = started + timeout_s
        payload = body.read_bytes()
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}: {_tail(log)}")
            try:
                scores = _scores(_post(server, payload))
                break
            except Exception as exc:  # not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"not answering after {timeout_s:.0f}s ({exc}): {_tail(log)}"
                    ) from None
                time.sleep(0.05)
        server.ready_s = time.monotonic() - started
        if not np.allclose(scores, expected, rtol=1e-3, atol=1e-5):
            raise RuntimeError(f"wrong scores: {scores[:4]} instead of {expected[:4]}")
        yield server
    finally:
        server.process = None
        _stop(process)
        for command in server.cleanup:
            subprocess.run(command, capture_output=True, timeout=120, check=False)


def time_to_ready(server: Server, log: Path, timeout_s: float = 60) -> float:
    """Seconds from starting the server's process to the first 200 on its ready path."""
    assert server.ready_path is not None
    url = f"http://127.0.0.1:{server.port}{server.ready_path}"
    started = time.monotonic()
    process = _start(server, log)
    try:
        while time.monotonic() - started < timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}: {_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except Exception:  # not up yet
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{url} not 200 after {timeout_s:.0f}s: {_tail(log)}")
    finally:
        _stop(process)


def start_and_import_s(server: Server) -> float:
    """Seconds for a fresh Python to start and import what the server's process imports first."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", f"import {', '.join(server.imports)}"],
        cwd=ROOT,
        env={**os.environ, **server.env},
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-6:])[-800:]
