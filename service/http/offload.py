"""Work that would hold the event loop for long, done on a few threads or in a worker process.

Decoding a request body costs time in proportion to its size: a 60 MB JSON body took seconds of
parsing, during which the event loop answered nobody. Bodies above `inline_body_bytes` are decoded
on threads, at most `decode_threads` at once (the rest wait their turn, so a flood of large bodies
holds a bounded amount of memory in flight); smaller ones, batch-1 requests among them, are
decoded inline, where a thread hop would cost more than the work it moves.

A thread is not enough for a JSON parse: simdjson, orjson and pydantic-core parse holding the
GIL (0.5–0.8 s for 60 MB), so a thread parsing stalls the event loop as surely as the loop
parsing. JSON bodies above `process_body_bytes` are parsed in a worker process instead
(`decode_processes` of them, started on first use): the API process only copies the body out
and the array back, a few milliseconds for 60 MB.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.types import Scope

from core.errors import Overloaded
from core.parent_death import die_with

T = TypeVar("T")


def decoding_limiter(threads: int) -> CapacityLimiter:
    """The app's bound on bodies decoded at once (kept in `app.state.decoding`)."""
    return CapacityLimiter(threads)


class DecodingProcesses:
    """Worker processes for parsing large bodies (kept in `app.state.decoding_processes`).

    Started on the first large body, so a server that never gets one never pays for them; a
    pool whose process died (killed for memory, say) is replaced, and its callers get a 503.
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the API process runs threads (onnxruntime's, the batchers').
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    # A parser outlived a server killed by SIGKILL, or stopped too slowly.
                    initializer=die_with,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a worker process: `work`, its arguments, result and exceptions are
        pickled across."""
        pool = self._started()
        try:
            return await asyncio.wrap_future(pool.submit(work, *args))
        except BrokenProcessPool:
            self._discard(pool)
            raise Overloaded(
                "the process decoding large request bodies stopped (out of memory?); try again"
            ) from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


async def decode(scope: Scope, size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`: inline for a body of `size` bytes up to the inline limit, else on a thread."""
    state = scope["app"].state
    if size <= state.settings.inline_body_bytes:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args, limiter=state.decoding)


async def parse(scope: Scope, size: int, work: Callable[..., T], *args: Any) -> T:
    """Like `decode`, and in a worker process above `process_body_bytes`: for `work` that parses
    JSON, a module-level function whose arguments and result pickle."""
    state = scope["app"].state
    settings = state.settings
    processes: DecodingProcesses | None = getattr(state, "decoding_processes", None)
    if processes is None or size <= max(settings.process_body_bytes, settings.inline_body_bytes):
        return await decode(scope, size, work, *args)
    async with state.decoding:  # the same bound on bodies in flight as on threads
        return await processes.run(work, *args)
