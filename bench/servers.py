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
    error: str | None = None  # why it could not be started, when it could not
    notes: str = ""
    cleanup: list[list[str]] = field(default_factory=list)

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


def naive(model: BenchModel) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "bench.naive_server", str(model.onnx), str(port)]
    return Server("naive FastAPI", command, _base_env(model), "/score", "json", port)


def aeserve(model: BenchModel, repository: Path, batching: bool) -> Server:
    port = free_port()
    aeserve_bin = str(Path(sys.executable).parent / "aeserve")
    env = {
        **_base_env(model),
        "AESERVE_MODEL_REPOSITORY": str(repository),
        "AESERVE_DEFAULT_MODEL": model.name,
        "AESERVE_INTRA_OP_THREADS": "1",
        "AESERVE_INTER_OP_THREADS": "1",
        "AESERVE_DYNAMIC_BATCHING": "true" if batching else "false",
    }
    command = [aeserve_bin, "serve", "--port", str(port), "--log-level", "warning"]
    label = f"aeserve, batching {'on' if batching else 'off'}"
    return Server(label, command, env, "/score", "json", port, batching)


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
    server = Server(label, command, env, path, body, port, batching)
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


@contextmanager
def running(
    server: Server, body: Path, expected: np.ndarray, log: Path, timeout_s: float = 180
) -> Iterator[Server]:
    """The server, started in its own process group, answering `body` with `expected` scores."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            cwd=PEERS_DIR if "bentoml" in server.command[0] else ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
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
                time.sleep(0.5)
        if not np.allclose(scores, expected, rtol=1e-3, atol=1e-5):
            raise RuntimeError(f"wrong scores: {scores[:4]} instead of {expected[:4]}")
        yield server
    finally:
        _stop(process)
        for command in server.cleanup:
            subprocess.run(command, capture_output=True, timeout=120, check=False)


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
