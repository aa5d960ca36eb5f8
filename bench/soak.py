"""The soak scenario of bench/reliability.py: mixed traffic for minutes, with a training job and
two promotions in the middle.

Four clients send, each at a fixed pace, in turn: batch-1 JSON /score, batch-64 JSON /score,
batch-64 `.npy` /score and batch-64 KServe v2 binary infer. A third of the way in, a training
job (POST /train, inline rows) publishes a new version of the served model, which is then
promoted; two thirds of the way in, the first version is promoted back. Every answer other than
200 (or an intended 503 with Retry-After) is a failure. The API process's RSS is read every
second: at the end of minute 1, its peak, at the end.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.prepare import mnist_like

if TYPE_CHECKING:
    from bench.reliability import Latencies, Server

CLIENTS = 4
PACE_S = 0.025  # each client sends a request every 25 ms at most: about 160 requests/s in all
WARM_S = 60.0  # RSS growth is judged from the end of this to the end of the run


@dataclass(frozen=True)
class Kind:
    label: str
    path: str
    body: bytes
    headers: dict[str, str]


def kinds(model: str, dim: int) -> list[Kind]:
    rows = mnist_like(65, seed=3)[:, :dim]
    one, many = rows[:1], rows[1:]
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": list(many.shape),
                    "parameters": {"binary_data_size": many.nbytes},
                }
            ]
        }
    ).encode()
    npy = _npy(many)
    json_type = {"Content-Type": "application/json"}
    return [
        Kind("JSON batch 1", "/score", json.dumps({"vectors": one.tolist()}).encode(), json_type),
        Kind("JSON batch 64", "/score", json.dumps({"vectors": many.tolist()}).encode(), json_type),
        Kind(".npy batch 64", "/score", npy, {"Content-Type": "application/x-npy"}),
        Kind(
            "v2 binary batch 64",
            f"/v2/models/{model}/infer",
            head + many.astype("<f4").tobytes(),
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(head)),
            },
        ),
    ]


def _npy(rows: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, rows.astype(np.float32))
    return out.getvalue()


@dataclass
class Traffic:
    """What the clients saw, by kind, and what the admin steps did."""

    by_kind: dict[str, Latencies]
    failures: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(server: Server, all_kinds: list[Kind], traffic: Traffic, stop: threading.Event) -> None:
    connection = server.connection(30)
    turn = 0
    while not stop.is_set():
        kind = all_kinds[turn % len(all_kinds)]
        turn += 1
        started = time.perf_counter()
        try:
            connection.request("POST", kind.path, body=kind.body, headers=kind.headers)
            response = connection.getresponse()
            response.read()
            status, retry = response.status, response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            with traffic.lock:
                traffic.failures.append(f"{kind.label}: {type(exc).__name__}")
            connection.close()
            connection = server.connection(30)
            continue
        took = time.perf_counter() - started
        with traffic.lock:
            into = traffic.by_kind[kind.label]
            into.seconds.append(took)
            into.statuses[status] = into.statuses.get(status, 0) + 1
            if status != 200 and not (status == 503 and retry):
                traffic.failures.append(f"{kind.label}: {status}")
        if response.getheader("Connection") == "close":
            connection.close()
            connection = server.connection(30)
        stop.wait(max(0.0, PACE_S - took))
    connection.close()


def _call(
    server: Server, method: str, path: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    connection = server.connection(60)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def train_and_promote(server: Server, model: str, dim: int, traffic: Traffic) -> int:
    """Train a new version on inline rows, wait for it, promote it; the version it replaced."""
    _, described = _call(server, "GET", f"/models/{model}")
    before = int(described["active_version"])
    rows = mnist_like(300, seed=5)[:, :dim].round(3).tolist()
    request = {
        "name": model,
        "data": {"vectors": rows},
        "config": {"hidden_dims": [128], "latent_dim": 16, "epochs": 3},
    }
    started = time.monotonic()
    status, job = _call(server, "POST", "/train", request)
    traffic.steps.append(f"POST /train: {status}")
    if status != 202:
        return before
    while True:
        _, job = _call(server, "GET", f"/jobs/{job['job_id']}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    trained = time.monotonic() - started
    traffic.steps.append(f"training job {job['status']} after {trained:.0f} s")
    if job["status"] == "succeeded":
        version = job["result"]["model"]["version"]
        status, _ = _call(server, "POST", f"/models/{model}/versions/{version}/promote")
        traffic.steps.append(f"promote v{version}: {status}")
    return before


def promote(server: Server, model: str, version: int, traffic: Traffic) -> None:
    status, _ = _call(server, "POST", f"/models/{model}/versions/{version}/promote")
    traffic.steps.append(f"promote v{version} back: {status}")


def run(server: Server, model: str, dim: int, seconds: float, traffic: Traffic) -> list[str]:
    """Soak `server` for `seconds`; the report's lines. RSS is the API process's alone, not the
    training process it starts."""
    all_kinds = kinds(model, dim)
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(server, all_kinds, traffic, stop))
        for _ in range(CLIENTS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    first: list[int] = []

    def admin() -> None:
        stop.wait(seconds / 3)
        first.append(train_and_promote(server, model, dim, traffic))
        stop.wait(max(0.0, started + 2 * seconds / 3 - time.monotonic()))
        if not stop.is_set():
            promote(server, model, first[0], traffic)

    steps = threading.Thread(target=admin)
    steps.start()
    warm_s = min(WARM_S, seconds / 10)
    at_warm = peak = server.rss_mb(children=False)
    warm_read = False
    step_s = 60 if seconds >= 120 else 10  # how often RSS is noted for the report
    by_minute: list[float] = []
    while (elapsed := time.monotonic() - started) < seconds:
        rss = server.rss_mb(children=False)
        peak = max(peak, rss)
        if elapsed >= step_s * (len(by_minute) + 1):
            by_minute.append(rss)
        if not warm_read and elapsed >= warm_s:
            at_warm, warm_read = rss, True
        time.sleep(1)
    end = server.rss_mb(children=False)
    stop.set()
    for thread in [*threads, steps]:
        thread.join()
    sent = sum(len(latencies.seconds) for latencies in traffic.by_kind.values())
    every = np.concatenate([latencies.seconds for latencies in traffic.by_kind.values()])
    lines = [
        f"- {sent:,} requests from {CLIENTS} clients over {seconds / 60:.0f} minutes; "
        f"p99 of all {np.percentile(every, 99) * 1000:.1f} ms; failed "
        f"{len(traffic.failures)}"
        + (f" ({', '.join(sorted(set(traffic.failures))[:6])})" if traffic.failures else ""),
        f"- RSS of the API process: {at_warm:.0f} MB at {warm_s:.0f} s, peak {peak:.0f} MB, "
        f"{end:.0f} MB at the end ({(end - at_warm) / at_warm:+.1%} from {warm_s:.0f} s); "
        f"{'each minute' if step_s == 60 else 'every 10 s'}: "
        f"{', '.join(f'{mb:.0f}' for mb in by_minute)} MB",
        f"- in the middle: {'; '.join(traffic.steps)}",
    ]
    lines += [f"- {label}: {latencies.summary()}" for label, latencies in traffic.by_kind.items()]
    return lines
