"""Where the resident memory and the start-up time of aeserve's API process go: one more start
of `aeserve serve` (batching on, 1 batch worker, one model), as bench/servers.py starts it but
run by bench/memory_probe.py in the same process, then the serving benchmark's warm-up.

The probe charges each imported package what the process grew and the seconds that passed while
its modules ran, and charges the app's build and the model's load; RSS (VmRSS of
/proc/PID/status) is read at the first 200 on /readyz and after each warm-up workload, and the
time to that 200 from the process's start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import servers
from bench.prepare import BenchModel

SMALL_MB = 0.5  # packages that add less, and take less than SMALL_S, are counted together
SMALL_S = 0.02


@dataclass(frozen=True)
class Record:
    """What bench/memory_probe.py wrote, in MB."""

    start_mb: float  # the probe's process as it began, its own standard-library imports in
    packages: dict[str, float]  # package (`service` by part) → what it added, in import order
    imports_mb: float  # all imports together
    phases: dict[str, float]  # "app": the app's build, "model": the model's load
    package_s: dict[str, float]  # the same in seconds
    imports_s: float
    phase_s: dict[str, float]


@dataclass(frozen=True)
class Start:
    """Seconds: a bare interpreter's start to exit, and this server's start to its first 200."""

    bare_s: float
    ready_s: float


@dataclass(frozen=True)
class Status:
    rss_mb: float
    file_mb: float  # pages of mapped files (libraries' code and data), shareable
    threads: int


def read_status(pid: int) -> Status:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssFile", "Threads"):
            found[key] = int(value.split()[0])
    return Status(found["VmRSS"] / 1024, found["RssFile"] / 1024, found["Threads"])


def measure(
    model: BenchModel,
    repository: Path,
    warm_up: list[tuple[str, Callable[[str], object]]],
    log_dir: Path,
) -> list[str]:
    """Start aeserve under the probe, warm it up (each step given the server's /score URL), and
    return the table of where its RSS went."""
    bare, bare_s = _bare_interpreter()
    server = servers.aeserve(model, repository, True, 1)
    out = log_dir / "memory-probe.json"
    out.unlink(missing_ok=True)
    server.command = [sys.executable, "-m", "bench.memory_probe", str(out), *server.command[1:]]
    started = time.monotonic()
    process = servers._start(server, log_dir / "memory-probe.log")
    try:
        _wait_ready(f"http://127.0.0.1:{server.port}/readyz", process)
        start = Start(bare_s, time.monotonic() - started)
        ready = read_status(process.pid)
        process.send_signal(signal.SIGUSR1)  # the event loop runs the handler within 0.1 s
        record = _record(out)
        steps = []
        for label, run in warm_up:
            run(server.url)
            steps.append((label, read_status(process.pid)))
    finally:
        servers._stop(process)
    return table(bare, record, ready, steps, model.name, start)


def table(
    bare: float,
    record: Record,
    ready: Status,
    steps: list[tuple[str, Status]],
    model: str,
    start: Start,
) -> list[str]:
    """`bare`: a fresh interpreter's RSS; the probe's own imports (standard library) count as
    imports (their seconds, before the probe could time them, fall in the rest of start-up)."""
    packages, seconds = record.packages, record.package_s
    imports = record.start_mb - bare + record.imports_mb
    stdlib = [name for name in packages if name in sys.stdlib_module_names]
    small = [
        n
        for n, mb in packages.items()
        if mb < SMALL_MB and seconds.get(n, 0.0) < SMALL_S and n not in stdlib
    ]
    rows = [
        (f"`{n}`", mb, seconds.get(n, 0.0))
        for n, mb in packages.items()
        if n not in stdlib and n not in small
    ]
    rows.append(
        (
            f"{len(small)} other packages, under {SMALL_MB} MB and {SMALL_S * 1000:.0f} ms each",
            _sum(packages, small),
            _sum(seconds, small),
        )
    )
    rows.append(
        (
            "the standard library's modules",
            record.start_mb - bare + _sum(packages, stdlib),
            _sum(seconds, stdlib),
        )
    )
    lines = [
        "| step | adds, MB | RSS after, MB | takes, s | since the start, s |",
        "|---|---:|---:|---:|---:|",
        f"| Python started, nothing imported | {bare:.1f} | {bare:.1f} | {start.bare_s:.2f} | "
        f"{start.bare_s:.2f} |",
        *(f"| import {label} | {mb:.1f} | | {s:.3f} | |" for label, mb, s in rows),
        f"| all imports | {imports:.1f} | {bare + imports:.1f} | {record.imports_s:.2f} | "
        f"{start.bare_s + record.imports_s:.2f} |",
    ]
    elapsed = start.bare_s + record.imports_s
    app, load = record.phases.get("app"), record.phases.get("model")
    if app is not None:
        app_s = record.phase_s.get("app", 0.0)
        elapsed += app_s
        lines.append(
            f"| building the app (`create_app`; its imports above) | {app:.1f} | | {app_s:.2f} | "
            f"{elapsed:.2f} |"
        )
    if load is not None:
        load_s = record.phase_s.get("model", 0.0)
        elapsed += load_s
        what = "`load_runtime`: an onnxruntime session per graph, the calibration scores"
        lines.append(f"| loading {model} ({what}) | {load:.1f} | | {load_s:.2f} | {elapsed:.2f} |")
    rest = ready.rss_mb - bare - imports - (app or 0.0) - (load or 0.0)
    lines += [
        f"| the rest of start-up (uvicorn, the lifespan's threads and stores; the probe's own "
        f"imports; polling /readyz every 50 ms) | {rest:.1f} | | {start.ready_s - elapsed:.2f} | |",
        f"| **at the first 200 on /readyz** ({ready.threads} threads) | | **{ready.rss_mb:.1f}** "
        f"| | **{start.ready_s:.2f}** |",
    ]
    previous = ready
    for label, status in steps:
        lines.append(
            f"| warm-up: {label} ({status.threads} threads) | "
            f"{status.rss_mb - previous.rss_mb:.1f} | {status.rss_mb:.1f} | | |"
        )
        previous = status
    warm = previous
    lines += [
        "",
        f"Of the RSS after warm-up, {warm.file_mb:.1f} MB are pages of mapped files (libraries' "
        f"code and data, shareable between processes) and {warm.rss_mb - warm.file_mb:.1f} MB "
        f"anonymous memory (heaps, onnxruntime's arena, thread stacks); at ready "
        f"{ready.file_mb:.1f} and {ready.rss_mb - ready.file_mb:.1f} MB.",
    ]
    return lines


def _sum(packages: dict[str, float], names: list[str]) -> float:
    return sum(packages[name] for name in names)


def _bare_interpreter() -> tuple[float, float]:
    """RSS (MB) of this Python started with nothing imported (beyond what its start imports),
    and the seconds from its start to its exit, the fastest of 3."""
    code = "print(open('/proc/self/statm').read().split()[1])"
    times, pages = [], 0
    for _ in range(3):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times.append(time.monotonic() - started)
        pages = int(done.stdout)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20, min(times)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"aeserve under the probe exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:  # not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not 200 after {timeout_s:.0f} s")


def _record(out: Path, timeout_s: float = 10) -> Record:
    deadline = time.monotonic() + timeout_s
    while not out.exists():  # the probe writes it whole, then renames it into place
        if time.monotonic() > deadline:
            raise RuntimeError("the probe did not answer SIGUSR1")
        time.sleep(0.05)
    return Record(**json.loads(out.read_text()))
