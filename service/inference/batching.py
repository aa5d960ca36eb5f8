"""Dynamic batching: concurrent requests for one model version merged into one onnxruntime call.

Triton's idea, in-process. Requests queue up while the previous batch runs; a worker thread takes
every queued request that shares its key (graph and outputs), up to `max_rows` rows, runs them as
one n × d array and splits the outputs back by row. Under load many batch-1 calls become a few
large ones, where onnxruntime's cost per row is an order of magnitude lower; an idle server runs a
lone request at once (unless `max_delay_s` asks it to wait for company).

Turned off, the same workers run each request as its own call, in arrival order: on and off then
differ in the merging alone, not in how work reaches onnxruntime.

Workers are plain threads, so inference never blocks the event loop, and results go back with one
`call_soon_threadsafe` per batch. A worker exits after `idle_s` without work and another starts
with the next request: a version that is swapped out finishes what it has queued and then lets
its threads go, with nothing to close.

Under overload it sheds rather than queues: past `max_queued_rows` rows waiting, `submit` raises
`Overloaded` (503 with Retry-After) at once; a request not answered within `timeout_s` gets
`DeadlineExceeded` (504) and leaves the queue if it has not started, so a hung or slow run
never holds its callers for longer than the deadline. A worker thread survives any exception of
a run (a `BaseException` ends it only after its batch has its answer and a replacement is
started), and a merged run that fails for a systemic reason fails its requests once rather
than being retried request by request.

A waiting worker is woken once per event-loop iteration, by a callback queued behind the ones
that were ready with the request, not by each request as it arrives. Requests read in the same
iteration then share a batch, and the worker asks for the GIL when the loop is about to wait for
I/O rather than in the middle of its work: a worker woken early waits on a GIL that the loop takes
back between every callback, and each such handover costs the loop a futex wake-up. Measured on
two cores at batch 1 with 8 clients, this one change took /score from 5.6k to 7.0k requests/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import DeadlineExceeded, Overloaded

log = logging.getLogger("aeserve.batching")

Arrays = list[np.ndarray[Any, Any]]
Run = Callable[[Hashable, np.ndarray[Any, Any]], Sequence[np.ndarray[Any, Any]]]
"""run(key, rows) → outputs, each with one entry per row along its first axis."""


_thread = threading.local()


def running_loop() -> asyncio.AbstractEventLoop:
    """`asyncio.get_running_loop()`, remembered per thread while that loop runs.

    On Python 3.11 every get_running_loop call makes a getpid system call (a check for forks
    that 3.12 dropped); profiling a batch-1 /score put that one call at 7% of the request. A
    thread runs one loop at a time, so the remembered one is right for as long as it is running.
    """
    loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
    if loop is None or not loop.is_running():
        loop = _thread.loop = asyncio.get_running_loop()
    return loop


@dataclass(eq=False)
class _Pending:
    key: Hashable
    rows: np.ndarray[Any, Any]
    future: asyncio.Future[Arrays]
    loop: asyncio.AbstractEventLoop


class DynamicBatcher:
    """Runs `run(key, rows)` for coroutines, merging the rows of concurrent calls with one key.

    `submit` must get rows that are already validated: a merged call that fails anyway is retried
    request by request, so one request's failure never becomes its batch-mates' (unless the
    failure is systemic, see `_execute`).
    """

    def __init__(
        self,
        run: Run,
        *,
        max_rows: int,
        max_delay_s: float = 0.0,
        enabled: bool = True,
        workers: int = 1,
        idle_s: float = 5.0,
        max_queued_rows: int | None = None,
        timeout_s: float | None = None,
        name: str = "batcher",
        label: str = "the model",
    ) -> None:
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        """Most rows waiting to start; more gets `Overloaded` (None: no bound). A request finding
        the queue empty is taken whatever its size."""
        self.timeout_s = timeout_s
        """Deadline of a request from its submission (None: none)."""
        self.workers = workers
        self.max_delay_s = max_delay_s
        self.enabled = enabled
        self.idle_s = idle_s
        self.name = name  # of its threads
        self.label = label  # in messages
        self._run = run
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads = 0  # workers alive
        self._rows_waiting = 0
        self._idle = 0  # workers waiting for requests
        # Loops with a wake-up queued; weak, so a loop closed before running it is not kept.
        self._waking: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    async def submit(self, key: Hashable, rows: np.ndarray[Any, Any]) -> Arrays:
        """The outputs of `run(key, rows)`, for these rows only.

        Raises `Overloaded` when too many rows wait already, `DeadlineExceeded` past `timeout_s`.
        """
        loop = running_loop()
        future: asyncio.Future[Arrays] = loop.create_future()
        pending = _Pending(key, rows, future, loop)
        with self._ready:
            limit = self.max_queued_rows
            if limit is not None and self._rows_waiting and self._rows_waiting + len(rows) > limit:
                raise Overloaded(
                    f"{self.label} has {self._rows_waiting} rows waiting, the limit is {limit}; "
                    "retry shortly"
                )
            self._queue.append(pending)
            self._rows_waiting += len(rows)
            if self._needs_worker():
                self._start_worker()
            elif loop not in self._waking:
                self._waking.add(loop)
                loop.call_soon(self._wake, loop)
        if self.timeout_s is None:
            # A cancelled caller cancels `future`; the worker then skips or ignores it.
            return await future
        expiry = loop.call_later(self.timeout_s, self._expire, pending)
        try:
            return await future
        finally:
            expiry.cancel()

    def _expire(self, pending: _Pending) -> None:
        """On the event loop, at the deadline: answer 504 and drop the rows if not started."""
        if pending.future.done():
            return
        with self._ready:
            try:
                self._queue.remove(pending)
            except ValueError:  # running (maybe hung): its result will be ignored
                pass
            else:
                self._rows_waiting -= len(pending.rows)
                # Every worker busy past a deadline (a hung run): one more may serve the rest.
                if self._queue and self._idle == 0 and self._threads < self.workers:
                    self._start_worker()
        pending.future.set_exception(
            DeadlineExceeded(f"{self.label} gave no answer within {self.timeout_s:g} s")
        )

    def _start_worker(self) -> None:
        """Call with `_ready` held."""
        self._threads += 1
        threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake a waiting worker for what this loop queued since its last wake-up (a worker that
        leaves requests behind wakes the next one)."""
        with self._ready:
            self._waking.discard(loop)
            self._ready.notify()

    def _needs_worker(self) -> bool:
        """Whether to start a thread: none is running, or all are busy and half a batch waits.

        Small requests are better merged by the one busy worker than run beside it (the event
        loop, not onnxruntime, is then the bottleneck); large ones can use a spare core.
        """
        if self._threads == 0:
            return True
        busy = self._idle == 0 and self._threads < self.workers
        return busy and (not self.enabled or self._rows_waiting >= self.max_rows // 2)

    @property
    def running(self) -> bool:
        """Whether a worker thread is alive (each exits after `idle_s` without work)."""
        return self._threads > 0

    # -- the worker thread ------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if batch:
                    self._execute(batch)
        except BaseException:
            # Its batch has its answer (see `_execute`); the queue must not be left unserved.
            with self._ready:
                self._threads -= 1
                if self._queue:
                    self._start_worker()
            raise

    def _next_batch(self) -> list[_Pending] | None:
        """The next requests to run together; [] if all were cancelled, None to exit."""
        with self._ready:
            while not self._queue:
                self._idle += 1
                woken = self._ready.wait(self.idle_s)
                self._idle -= 1
                if not woken and not self._queue:
                    self._threads -= 1  # under the lock: `submit` starts a new one if needed
                    return None
            key = self._queue[0].key
            if not self.enabled:
                batch = self._take_one()
            else:
                if self.max_delay_s > 0:
                    deadline = time.monotonic() + self.max_delay_s
                    while self._rows_queued(key) < self.max_rows:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._ready.wait(remaining)
                batch = self._take(key)
            if self._queue and self._idle:  # more than this batch waits: another worker takes it
                self._ready.notify()
            return batch

    def _take_one(self) -> list[_Pending]:
        """With batching off: the oldest request still wanted, alone."""
        while self._queue:
            pending = self._queue.popleft()
            self._rows_waiting -= len(pending.rows)
            if not pending.future.done():  # not cancelled nor past its deadline
                return [pending]
        return []

    def _rows_queued(self, key: Hashable) -> int:
        return sum(len(p.rows) for p in self._queue if p.key == key)

    def _take(self, key: Hashable) -> list[_Pending]:
        """Queued requests with `key`, in order, up to `max_rows` rows (a larger one runs alone)."""
        taken: list[_Pending] = []
        kept: deque[_Pending] = deque()
        rows = 0
        full = False
        for pending in self._queue:
            if pending.future.done():  # its client is gone or timed out: no point computing it
                continue
            n = len(pending.rows)
            if not full and pending.key == key and (not taken or rows + n <= self.max_rows):
                taken.append(pending)
                rows += n
            else:
                full = full or pending.key == key  # later ones must not overtake it
                kept.append(pending)
        self._queue = kept
        self._rows_waiting = sum(len(p.rows) for p in kept)
        return taken

    def _execute(self, batch: list[_Pending]) -> None:
        try:
            results: list[Arrays | BaseException] = self._results(batch)
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, MemoryError):
                self._retry_alone(batch, exc)
                return
            results = [exc] * len(batch)
        except BaseException as exc:  # SystemExit and the like: answer, then let the thread go
            _deliver(batch, [_failure(exc)] * len(batch))
            raise
        _deliver(batch, results)

    def _results(self, batch: list[_Pending]) -> list[Arrays | BaseException]:
        key = batch[0].key
        if len(batch) == 1:
            return [list(self._run(key, batch[0].rows))]
        outputs = self._run(key, np.concatenate([p.rows for p in batch]))
        results: list[Arrays | BaseException] = []
        start = 0
        for pending in batch:
            stop = start + len(pending.rows)
            results.append([output[start:stop] for output in outputs])
            start = stop
        return results

    def _retry_alone(self, batch: list[_Pending], merged: Exception) -> None:
        """Find whose rows fail: each request gets its own outcome. Once two requests have failed
        alone the way the whole batch did, the fault is not theirs (out of memory, a broken
        session): the rest get that error without a run each."""
        same = 0
        for i, pending in enumerate(batch):
            if same >= 2:
                log.error("%s: a merged run failed for every request: %r", self.label, merged)
                _deliver(batch[i:], [merged] * (len(batch) - i))
                return
            try:
                result: Arrays | BaseException = self._results([pending])[0]
            except Exception as exc:
                result = exc
                same += type(exc) is type(merged) and str(exc) == str(merged)
            except BaseException as exc:
                _deliver(batch[i:], [_failure(exc)] * (len(batch) - i))
                raise
            _deliver([pending], [result])


def _failure(exc: BaseException) -> Exception:
    """What a caller gets for a run that raised `exc`: never a BaseException, which would
    stop the event loop that settles it."""
    return exc if isinstance(exc, Exception) else RuntimeError(f"inference failed: {exc!r}")


def _deliver(batch: list[_Pending], results: list[Arrays | BaseException]) -> None:
    """Hand results to their event loops: one thread-safe callback per loop, not per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Arrays], Any]]] = {}
    for pending, result in zip(batch, results, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending.future, result))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Arrays], Arrays | BaseException]]) -> None:
    for future, result in settled:
        if future.done():  # cancelled while it ran
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
