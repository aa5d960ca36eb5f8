"""The machine under the benchmark: what it is, how busy it is, what a server's processes hold.

Read from /proc (Linux), so the numbers need nothing installed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

_PAGE = os.sysconf("SC_PAGE_SIZE")


def describe() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}"
    )


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over every core since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all cores busy over the next `seconds` (0–1), whoever keeps them busy."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(total1 - total0, 1)


def load_now(seconds: float = 2.0) -> str:
    """The machine's load in words: load averages and how busy its cores are right now."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    busy = cpu_busy(seconds)
    return (
        f"load average {load} (1, 5, 15 min); cores {busy:.0%} busy over {seconds:g} s "
        f"(≈ {busy * (os.cpu_count() or 1):.1f} of {os.cpu_count()} cores in use)"
    )


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # all of the server's processes together
    processes: int
    largest_mb: float  # its largest process (an API process, for aeserve)


def _processes() -> dict[int, tuple[int, int, float]]:
    """pid → (parent pid, session id, resident MB) of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # The command may hold spaces and parentheses: the fields follow the last ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        found[int(entry.name)] = (int(fields[1]), int(fields[3]), pages * _PAGE / 2**20)
    return found


def server_memory(leader: int) -> Memory | None:
    """Resident memory of a server: the process `leader` (started with
    `start_new_session=True`), every process in its session and every descendant (some
    servers start workers in sessions of their own)."""
    processes = _processes()
    mine = {pid for pid, (_, session, _) in processes.items() if session == leader}
    mine.add(leader)
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in processes.items() if parent in mine}
        grew = not children <= mine
        mine |= children
    sizes = [processes[pid][2] for pid in mine if pid in processes]
    if not sizes:
        return None
    return Memory(sum(sizes), len(sizes), max(sizes))


@contextmanager
def busy_core() -> Iterator[None]:
    """One process spinning on one core while the block runs: a neighbour's CPU load."""
    spinner = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)  # scheduled and spinning before the first measurement
        yield
    finally:
        spinner.kill()
        spinner.wait(10)
