"""core/heap.py: memory freed inside the heap goes back to the system when asked."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import heap

REPO_ROOT = Path(__file__).resolve().parents[2]

# 250 MB in 64 KB buffers, seven of every eight freed: the heap's top stays in use, so malloc
# cannot shrink it from the end, and the freed pages stay resident until trimmed.
FRAGMENTED = """
from core import heap

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

kept, freed = [], []
for i in range(4000):
    (kept if i % 8 == 0 else freed).append(bytearray(64 * 1024))
del freed
before = rss_mb()
returned = heap.trim()
print(before, rss_mb(), returned)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_trim_returns_free_pages_inside_the_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    before, after, returned = out.stdout.split()
    if returned == "False" and float(before) - float(after) < 1:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert float(before) - float(after) > 150, out.stdout  # of the 218 MB freed
    assert returned == "True"


def test_the_trimmer_trims_on_its_interval_until_stopped() -> None:
    trimmer = heap.Trimmer(0.01)
    trimmer.start()
    deadline = time.monotonic() + 10
    while trimmer.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    trimmer.stop()
    assert trimmer.trims >= 3
    done = trimmer.trims
    time.sleep(0.05)
    assert trimmer.trims == done  # stopped


def test_an_interval_of_0_starts_no_thread() -> None:
    trimmer = heap.Trimmer(0)
    trimmer.start()
    assert trimmer._thread is None
    trimmer.stop()


# 8 MB freed: with glibc's own thresholds a block that size is mapped apart and unmapped at once;
# with the fixed ones it stays in the heap for reuse until a trim returns it.
KEPT_FOR_REUSE = """
import sys
from core import heap

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

configured = heap.configure() if sys.argv[1] == "fixed" else None
block = bytearray(8 << 20)
held = rss_mb()
del block
freed = rss_mb()
heap.trim()
print(configured, held - freed, held - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_fixed_thresholds_keep_a_freed_block_for_reuse_until_a_trim() -> None:
    def run(mode: str) -> tuple[str, float, float]:
        out = subprocess.run(
            [sys.executable, "-c", KEPT_FOR_REUSE, mode],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        configured, at_free, at_trim = out.stdout.split()
        return configured, float(at_free), float(at_trim)

    configured, at_free, at_trim = run("fixed")
    if configured != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert at_free < 1  # kept: the next block of that size reuses it
    assert at_trim > 7  # returned by the trim
    _, at_free, _ = run("glibc")
    assert at_free > 7  # glibc's own threshold: unmapped at once


# Six threads allocating at once, each holding its buffers until all have allocated; then
# malloc_info's XML lists one <heap> per arena.
ARENAS = """
import ctypes, sys, tempfile, threading
from core import heap

configured = heap.configure() if sys.argv[1] == "capped" else None
barrier = threading.Barrier(7)  # the six and this thread

def allocate():
    held = [bytearray(4096) for _ in range(2000)]
    barrier.wait()
    barrier.wait()

threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    barrier.wait()  # every thread holds its buffers
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    barrier.wait()
    for thread in threads:
        thread.join()
    print(configured, open(out.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_info")
def test_threads_share_at_most_arena_max_arenas() -> None:
    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", ARENAS, mode], cwd=REPO_ROOT, capture_output=True, text=True
        )
        if out.returncode != 0 and "malloc_info" in out.stderr:
            pytest.skip("this C library has no malloc_info (not glibc)")
        assert out.returncode == 0, out.stderr
        configured, arenas = out.stdout.split()
        return configured, int(arenas)

    configured, arenas = run("capped")
    if configured != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert arenas <= heap.ARENA_MAX
    _, arenas = run("glibc")
    assert arenas > heap.ARENA_MAX  # glibc's own: an arena for each thread allocating at once
