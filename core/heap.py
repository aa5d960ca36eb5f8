"""Handing freed heap memory back to the operating system.

glibc's malloc keeps what a process frees for its next allocations: after a model version is
loaded (onnxruntime's graph optimisation allocates, then frees, several times the model's size) or
a large training body is taken in, the resident size stays at its peak though the memory is free,
and a long-running server steps up with every such event. `trim()` asks malloc to return its free
pages (`malloc_trim(0)`, which since glibc 2.8 releases free pages inside the heap too, not only
at its top). It walks every arena under their locks, a few milliseconds, so it is called after
those rare events, not per request. On a C library without it (musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    function = getattr(libc, "malloc_trim", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def trim() -> bool:
    """Return malloc's free memory to the system; True if any was returned."""
    function = _malloc_trim()
    if function is None:
        return False
    return bool(function(0))
