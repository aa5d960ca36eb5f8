"""Handing freed heap memory back to the operating system.

glibc's malloc keeps what a process frees for its next allocations: after a model version is
loaded (onnxruntime's graph optimisation allocates, then frees, several times the model's size) or
a large training body is taken in, the resident size stays at its peak though the memory is free,
and a long-running server steps up with every such event. `trim()` asks malloc to return its free
pages (`malloc_trim(0)`, which since glibc 2.8 releases free pages inside the heap too, not only
at its top). It walks every arena under their locks: 7 ms to return 218 MB, 0.3 ms when
there is nothing to return, so it runs after those rare events and once a minute (`Trimmer`),
not per request; the once a minute is for what requests leave behind (the parse of a batch-64
JSON body grew a fresh server by 23 MB that malloc kept). On a C library without it (musl) it
does nothing.

`configure()` fixes malloc's thresholds for a server process. glibc moves its mmap threshold up
to the size of each mmapped block freed, and its trim threshold with it, so which allocations
are mapped, and which freed pages go back at once, drift with the traffic. Fixed, blocks under
`MMAP_THRESHOLD` come from the heap and are reused, and only the trims return memory: without
onnxruntime's arena (`cpu_mem_arena`, off by default for this reason), a batch-256 run of the
serving benchmark's model took 49% longer with the drifting thresholds (every intermediate
tensor a fresh mapping) and 4% longer with fixed ones than with the arena.

It also caps malloc's arenas at `ARENA_MAX`. glibc gives threads that allocate at once arenas of
their own, up to 8 per core, and each keeps its freed memory apart: a new version's batch thread,
the threadpool's threads and the loop spread the same traffic over more heaps, each fragmented
around what it still holds. In the 10-minute soak of bench/reliability.py (a training job, two
promotions) the API process grew 12.0% from minute 1 to the end with glibc's default and 5.6%
with two arenas, the step at the new version's load gone; batch 1 JSON and batch 256 `.npy`
served as fast (4 alternating rounds, ratios 1.00 and 1.01).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

MMAP_THRESHOLD = 16 << 20
"""Blocks from this size up are mapped apart and unmapped when freed (request bodies of many MB)."""
TRIM_THRESHOLD = 32 << 20
"""Free memory at the heap's top kept for reuse up to this size; the trims return the rest."""
ARENA_MAX = 2
"""Most malloc arenas (heaps) the process's threads share."""
_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    function = getattr(_libc(), "malloc_trim", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def configure(
    mmap_threshold: int = MMAP_THRESHOLD,
    trim_threshold: int = TRIM_THRESHOLD,
    arena_max: int = ARENA_MAX,
) -> bool:
    """Fix malloc's mmap and trim thresholds and cap its arenas (see the module's docstring),
    before the threads that allocate most start; True if it could."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        and mallopt(_M_ARENA_MAX, arena_max)
    )


def trim() -> bool:
    """Return malloc's free memory to the system; True if any was returned."""
    function = _malloc_trim()
    if function is None:
        return False
    return bool(function(0))


class Trimmer:
    """`trim()` every `interval_s` seconds on a daemon thread, until `stop()`; 0 never."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.trims = 0  # done so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="aeserve-heap-trim", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                trim()
            except Exception:  # a failed trim must not end the thread, nor the server
                logger.exception("heap trim failed")
            self.trims += 1
