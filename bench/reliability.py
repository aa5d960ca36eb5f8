"""How the server holds up against hostile and heavy clients, measured against real servers on
loopback; writes bench/results/reliability.md.

    make reliability                                 # every scenario, this checkout
    python -m bench.reliability                      # the same
    python -m bench.reliability attack idle          # some of them
    python -m bench.reliability --source DIR --out F # another checkout's service (e.g. a
                                                     # `git archive` of an older commit)

Scenarios (each starts its own `aeserve serve` on the bench models of bench/.work, trained on
first use by bench/prepare.py):

- `attack`: a normal client's batch-1 /score latency alone, then while two clients post 60 MB
  JSON bodies that simdjson's fast path declines (a duplicate key, a string in the last row, an
  option only pydantic's lax mode reads), then while two post 60 MB of valid JSON with too many
  rows; and how fast one over-limit body is refused.
- `overload`: the rate at which 16 closed-loop clients saturate the server (batch-64 `.npy`
  /score), then requests sent open-loop at twice that rate: goodput, the 503s (with
  `Retry-After`), latency of the answered requests (bench/open_loop.py).
- `idle`: 500 idle connections and a client sending its body a byte every 66 ms: when the
  server closes them, and a normal request's latency meanwhile.
- `workers`: `--workers 2`; the request counters of /metrics against the requests sent, on
  several scrapes.
- `soak`: 10 minutes (AESERVE_SOAK_S) of mixed traffic (JSON batch 1 and 64, `.npy`, v2
  binary) with a training job and two promotions in the middle: failures, the API process's RSS
  from minute 1 to the end, latencies (bench/soak.py).

Latencies are wall-clock on a shared machine: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import open_loop
from bench import soak as soak_run
from bench.prepare import ROOT, WORK, bodies, models
from bench.servers import free_port
from core.settings import Settings

REPOSITORY = WORK / "repository"
MODEL = "mnist784"
TARGET_MS = Settings.model_fields["inference_latency_target_ms"].default
DIM = 784
BIG_BYTES = 60 * 1024 * 1024
SOAK_S = float(os.environ.get("AESERVE_SOAK_S", 600))  # the soak's length; 600 s by default


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def rss_mb(self, children: bool = True) -> float:
        """Resident memory of the server and, with `children`, the processes it started."""
        total = 0
        for pid in [self.process.pid, *(_children(self.process.pid) if children else [])]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return total / 1024


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@contextmanager
def serving(
    source: Path, env: dict[str, str], workers: int = 1, cpus: set[int] | None = None
) -> Iterator[Server]:
    """`aeserve serve` on the bench model; on the CPUs `cpus` only, if given."""
    port = free_port()
    log = WORK / f"reliability-{port}.log"
    aeserve = str(Path(sys.executable).parent / "aeserve")
    command = [aeserve, "serve", "--port", str(port), "--workers", str(workers)]
    environment = {
        **os.environ,
        "PYTHONPATH": str(source),
        "AESERVE_MODEL_REPOSITORY": str(REPOSITORY),
        "AESERVE_DEFAULT_MODEL": MODEL,
        "OMP_NUM_THREADS": "1",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            env=environment,
            cwd=source,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
    server = Server(port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-800:]}")
            try:
                status, _ = post(server.connection(2), "/readyz", b"", method="GET")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def post(
    connection: http.client.HTTPConnection, path: str, body: bytes, method: str = "POST"
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    connection.request(method, path, body=body if method == "POST" else None, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


# -- bodies -------------------------------------------------------------------------------------


def small_body() -> bytes:
    row = np.random.default_rng(0).random(DIM).round(4).tolist()
    return json.dumps({"vectors": [row]}).encode()


def duplicate_key_body() -> bytes:
    """60 MB of valid rows (within the row limit) and a duplicate key at the end: simdjson's path
    refuses it, so pydantic validates every value."""
    row = ",".join(["0.123456"] * DIM)
    rows = min(BIG_BYTES // (len(row) + 3), 8192)
    return (
        b'{"vectors":[' + ",".join([f"[{row}]"] * rows).encode() + b'],"explain":false,'
        b'"explain":false}'
    )


def string_in_last_row_body() -> bytes:
    """60 MB of rows within the row limit, the last value a string: a 422 naming row and column."""
    body = duplicate_key_body().replace(b',"explain":false,"explain":false}', b"}")
    return body[: body.rindex(b",")] + b',"x"]]}'


def lax_option_body() -> bytes:
    """60 MB of valid rows and `"explain": "yes"`: valid (pydantic's lax reading), yet declined by
    simdjson's fast path, which takes only strict options."""
    return duplicate_key_body().replace(b'"explain":false,"explain":false}', b'"explain":"yes"}')


def too_many_rows_body() -> bytes:
    """60 MB of valid JSON with far more rows than the limit (8192)."""
    row = "[" + ",".join(["0"] * DIM) + "]"
    rows = BIG_BYTES // (len(row) + 1)
    return b'{"vectors":[' + ",".join([row] * rows).encode() + b"]}"


# -- clients ------------------------------------------------------------------------------------


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def summary(self) -> str:
        if not self.seconds:
            return f"no answers ({self.errors} errors)"
        ms = np.array(self.seconds) * 1000
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max "
            f"{ms.max():.0f} ms ({len(ms)} requests; {statuses}; {self.errors} errors)"
        )


def keep_posting(
    server: Server, body: bytes, stop: threading.Event, into: Latencies, timeout: float = 60
) -> None:
    connection = server.connection(timeout)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            status, _ = post(connection, "/score", body)
        except (OSError, http.client.HTTPException):
            into.errors += 1
            connection.close()
            connection = server.connection(timeout)
            continue
        into.seconds.append(time.perf_counter() - started)
        into.statuses[status] = into.statuses.get(status, 0) + 1
    connection.close()


def normal_client_while(
    server: Server, seconds: float, attackers: list[Callable[[threading.Event], None]]
) -> tuple[Latencies, float]:
    """The normal client's latencies while `attackers` run; the server's peak RSS (MB)."""
    stop = threading.Event()
    normal = Latencies()
    threads = [threading.Thread(target=a, args=(stop,)) for a in attackers]
    threads.append(threading.Thread(target=keep_posting, args=(server, small_body(), stop, normal)))
    for thread in threads:
        thread.start()
    peak = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, server.rss_mb())
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    return normal, peak


def refused_after_last_byte(
    server: Server, body: bytes, after_last: Latencies, after_first: Latencies
) -> bytes:
    """POST `body` to /score on a socket of its own; time the answer from the moment the last
    byte was handed to the kernel (and from the first), and return the answer's body."""
    head = (
        f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        first = time.perf_counter()
        sock.sendall(head + body)
        last = time.perf_counter()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        done = time.perf_counter()
    status = int(answer.split(b" ", 2)[1])
    for into, started in ((after_last, last), (after_first, first)):
        into.seconds.append(done - started)
        into.statuses[status] = into.statuses.get(status, 0) + 1
    return answer.partition(b"\r\n\r\n")[2]


# -- scenarios ----------------------------------------------------------------------------------


def attack(source: Path, lines: list[str]) -> None:
    lines += ["## Large bodies: a normal client beside two attackers", ""]
    bodies = {
        "60 MB JSON, duplicate key": duplicate_key_body(),
        "60 MB JSON, a string in the last row": string_in_last_row_body(),
        "60 MB valid JSON, a lax option": lax_option_body(),
        "60 MB valid JSON, too many rows": too_many_rows_body(),
    }
    with serving(source, {}) as server:
        normal, peak = normal_client_while(server, 8, [])
        lines.append(f"- alone: {normal.summary()}; RSS peak {peak:.0f} MB")
        for label, body in bodies.items():
            attacks = [Latencies(), Latencies()]
            attackers = [
                lambda stop, into=into, body=body: keep_posting(server, body, stop, into)
                for into in attacks
            ]
            normal, peak = normal_client_while(server, 15, attackers)
            lines.append(
                f"- while two clients post {label}: {normal.summary()}; RSS peak "
                f"{peak:.0f} MB, after {server.rss_mb():.0f} MB"
            )
            lines.append(f"  - the attackers' answers: {attacks[0].summary()}")
        body = bodies["60 MB valid JSON, too many rows"]
        refusals, whole = Latencies(), Latencies()
        for _ in range(5):
            answer = refused_after_last_byte(server, body, refusals, whole)
        lines.append(
            f"- one over-limit body alone, from its last byte sent to the answer: "
            f"{refusals.summary()}; from its first byte: {whole.summary()}: {answer[:120]!r}"
        )
    lines.append("")


def overload(source: Path, lines: list[str]) -> None:
    lines += ["## Open-loop load at twice the saturation rate", ""]
    (digits,) = (model for model in models(REPOSITORY) if model.name == MODEL)
    body = bodies(digits, 64).npy.read_bytes()  # 64 rows, as the serving benchmark sends
    request = open_loop.request_bytes("/score", body, "application/x-npy")
    # The server on one CPU and this generator on another, so that neither takes the other's
    # time: sharing both, the generator's work at twice the rate left the server less CPU than
    # it had when its saturation was measured.
    server_cpus, generator_cpus = ({0}, {1}) if (os.cpu_count() or 1) > 1 else (None, None)
    affinity = os.sched_getaffinity(0)
    if generator_cpus:
        os.sched_setaffinity(0, generator_cpus)
        lines.append("- the server runs on CPU 0, the load generator on CPU 1")
    try:
        for limit in (None, 32):
            env = {} if limit is None else {"AESERVE_MAX_INFERENCE_IN_PROGRESS": str(limit)}
            label = "128 (the default)" if limit is None else f"{limit}"
            label += f", latency target {TARGET_MS:g} ms" + (
                " (the default)" if limit is None else ""
            )
            with serving(source, env, cpus=server_cpus) as server:
                lines.append(f"- max_inference_in_progress {label}:")
                lines += [f"  {line}" for line in _overload_once(server.port, request)]
    finally:
        os.sched_setaffinity(0, affinity)
    lines.append("")


def _overload_once(port: int, request: bytes) -> list[str]:
    asyncio.run(open_loop.closed_loop(port, request, 16, 2))  # warm-up
    saturated = asyncio.run(open_loop.closed_loop(port, request, 16, 10))
    throughput = saturated.rate()
    rate = 2 * throughput
    loaded = asyncio.run(open_loop.open_loop(port, request, rate, 15))
    sent = len(loaded.statuses)
    others = {s: loaded.count(s) for s in sorted(set(loaded.statuses)) if s not in (200, 503)}
    return [
        f"- saturation (16 clients, closed loop, 10 s): {throughput:.0f} requests/s answered "
        f"200, p50 {saturated.percentile_ms(50):.1f} ms, p99 {saturated.percentile_ms(99):.1f} ms",
        f"- open loop at {rate:.0f} requests/s for 15 s ({sent} sent over at most 256 "
        f"connections, latency from when each was due): goodput {loaded.rate():.0f} requests/s "
        f"answered 200 ({loaded.rate() / throughput:.0%} of saturation), p50 "
        f"{loaded.percentile_ms(50):.1f} ms, p99 {loaded.percentile_ms(99):.1f} ms",
        f"- 503: {loaded.count(503)} ({loaded.count(503) / sent:.0%}), {loaded.retry_after} with "
        f"Retry-After, p99 {loaded.percentile_ms(99, 503):.1f} ms; other answers "
        f"{others or 'none'} (0: no answer within 30 s{_errors(loaded)})",
    ]


def _errors(outcome: open_loop.Outcome) -> str:
    return "".join(f"; {n} {name}" for name, n in outcome.errors.most_common())


def idle(source: Path, lines: list[str]) -> None:
    lines += ["## Idle connections and a slow body", ""]
    with serving(source, {}) as server:
        sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(500)]
        opened = time.monotonic()
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        slow_result: list[str] = []

        def dribble() -> None:
            started = time.monotonic()
            try:
                while time.monotonic() - started < 120:
                    slow.sendall(b" ")
                    time.sleep(0.066)
                slow_result.append("still sending after 120 s")
            except OSError as exc:
                slow_result.append(f"cut off after {time.monotonic() - started:.1f} s ({exc})")
                with suppress(OSError):
                    slow_result.append(f"answer {slow.recv(200)[:40]!r}")

        dribbler = threading.Thread(target=dribble)
        dribbler.start()
        normal, _ = normal_client_while(server, 8, [])
        lines.append(f"- a normal client meanwhile: {normal.summary()}")
        closed_at: list[float] = []
        for s in sockets:
            s.settimeout(max(0.1, 60 - (time.monotonic() - opened)))
            try:
                if s.recv(1) == b"":
                    closed_at.append(time.monotonic() - opened)
            except OSError:
                pass
            s.close()
        if closed_at:
            lines.append(
                f"- {len(closed_at)} of 500 idle connections closed by the server, the last "
                f"{max(closed_at):.1f} s after they opened"
            )
        else:
            lines.append("- none of the 500 idle connections was closed within 60 s")
        dribbler.join()
        lines.append(f"- the client sending a byte every 66 ms: {'; '.join(slow_result)}")
    lines.append("")


def workers(source: Path, lines: list[str]) -> None:
    lines += ["## `--workers 2`: /metrics against the requests sent", ""]
    sent = 600
    with serving(source, {}, workers=2) as server:
        body = small_body()
        for _ in range(sent // 6):  # new connections, so both workers serve some
            connection = server.connection()
            for _ in range(6):
                post(connection, "/score", body)
            connection.close()
        time.sleep(2)
        counts = []
        for _ in range(6):
            _, text = post(server.connection(), "/metrics", b"", method="GET")
            counts.append(
                sum(
                    float(m.group(1))
                    for m in re.finditer(
                        rb'^aeserve_requests_total\{[^}]*route="/score"[^}]*\} (\S+)',
                        text,
                        re.MULTILINE,
                    )
                )
            )
        lines.append(f"- sent {sent} /score requests; six scrapes counted {counts}")
    lines.append("")


def soak(source: Path, lines: list[str]) -> None:
    minutes = SOAK_S / 60
    lines += [f"## A {minutes:g}-minute soak: mixed traffic, a training job, two promotions", ""]
    traffic = soak_run.Traffic({kind.label: Latencies() for kind in soak_run.kinds(MODEL, DIM)})
    with serving(source, {}) as server:
        lines += soak_run.run(server, MODEL, DIM, SOAK_S, traffic)
    lines.append("")


SCENARIOS = {
    "attack": attack,
    "overload": overload,
    "idle": idle,
    "workers": workers,
    "soak": soak,
}


def _shown(path: Path) -> str:
    """A path as the results name it: relative to the repository when inside it."""
    path = path.resolve()
    return "this checkout" if path == ROOT else str(path).replace(str(ROOT), ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}; all if none")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose service runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reliability.md")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"no scenario {', '.join(sorted(unknown))}; there are {', '.join(SCENARIOS)}")
    models(REPOSITORY)  # the serving benchmark's models, trained on first use
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.source, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Reliability under hostile and heavy clients",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, service from {_shown(args.source)} "
        f"({commit or 'not a git checkout'}), {os.cpu_count()} CPUs. Command: "
        f"`{' '.join(['python -m bench.reliability', *sys.argv[1:]])}`",
        "",
    ]
    for name in args.scenarios or SCENARIOS:
        print(f"reliability: {name}", flush=True)
        SCENARIOS[name](args.source, lines)
        print("\n".join(lines[-8:]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
