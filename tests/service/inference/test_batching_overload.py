"""The dynamic batcher under overload and faults: it sheds, keeps deadlines, survives its runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pytest

from core.errors import DeadlineExceeded, Overloaded
from service.inference.batching import DynamicBatcher


def rows_for(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 3), float(i), dtype=np.float32)


class Held:
    """A run that holds every call until released, recording the first value of each call."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[float] = []

    def __call__(self, key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        self.started.set()
        self.release.wait(5)
        self.calls.extend(float(v) for v in rows[:, 0])
        return [rows * 2]


async def _until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.001)


def test_past_the_bound_on_waiting_rows_a_request_is_refused_at_once() -> None:
    run = Held()
    batcher = DynamicBatcher(run, max_rows=64, max_queued_rows=4, label="model 'm' v1")

    async def main() -> tuple[Any, ...]:
        running = asyncio.create_task(batcher.submit("k", rows_for(0, 8)))  # not waiting: taken
        await _until(run.started)
        waiting = asyncio.create_task(batcher.submit("k", rows_for(1, 3)))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit("k", rows_for(2, 2))
        fits = asyncio.create_task(batcher.submit("k", rows_for(3, 1)))
        await asyncio.sleep(0)
        run.release.set()
        return refused.value, *(await asyncio.gather(running, waiting, fits))

    refused, *answers = asyncio.run(main())
    assert refused.status_code == 503
    assert refused.headers == {"Retry-After": "1"}
    assert refused.message == "model 'm' v1 has 3 rows waiting, the limit is 4; retry shortly"
    assert [len(a[0]) for a in answers] == [8, 3, 1]
    assert 2.0 not in run.calls


def test_a_request_finding_nothing_waiting_is_taken_whatever_its_size() -> None:
    batcher = DynamicBatcher(lambda key, rows: [rows], max_rows=4, max_queued_rows=4)
    (rows,) = asyncio.run(batcher.submit("k", rows_for(1, 100)))
    assert len(rows) == 100


def test_past_the_deadline_callers_get_504_and_rows_not_started_are_dropped() -> None:
    run = Held()  # a hung session.run: nothing comes back until released
    batcher = DynamicBatcher(run, max_rows=64, timeout_s=0.2, label="model 'm' v1")

    async def main() -> list[Any]:
        running = asyncio.create_task(batcher.submit("k", rows_for(0)))
        await _until(run.started)
        queued = asyncio.create_task(batcher.submit("k", rows_for(1)))
        results = await asyncio.wait_for(asyncio.gather(running, queued, return_exceptions=True), 2)
        assert batcher._rows_waiting == 0  # the queued request left the queue
        run.release.set()
        after = await asyncio.wait_for(batcher.submit("k", rows_for(2)), 2)
        return [*results, after]

    running, queued, after = asyncio.run(main())
    for result in (running, queued):
        assert isinstance(result, DeadlineExceeded)
        assert result.status_code == 504
        assert result.message == "model 'm' v1 gave no answer within 0.2 s"
    np.testing.assert_array_equal(after[0], rows_for(2) * 2)
    assert 1.0 not in run.calls  # dropped: never run
    assert run.calls == [0.0, 2.0]


class Fatal(BaseException):
    pass


def test_a_worker_thread_ended_by_a_base_exception_is_replaced() -> None:
    entered = threading.Event()
    release = threading.Event()
    calls: list[float] = []

    def run(key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        calls.append(float(rows[0, 0]))
        if rows[0, 0] == 0:
            entered.set()
            release.wait(5)
            raise Fatal("the run took its thread with it")
        return [rows * 2]

    batcher = DynamicBatcher(run, max_rows=1, workers=1, idle_s=30)
    seen: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)  # type: ignore[assignment]

    async def main() -> list[Any]:
        dying = asyncio.create_task(batcher.submit("k", rows_for(0)))
        await _until(entered)
        behind = asyncio.create_task(batcher.submit("k", rows_for(1)))  # queued behind it
        await asyncio.sleep(0.01)
        release.set()
        return list(
            await asyncio.wait_for(asyncio.gather(dying, behind, return_exceptions=True), 2)
        )

    try:
        dying, behind = asyncio.run(main())
    finally:
        threading.excepthook = previous_hook
    assert isinstance(dying, RuntimeError)
    assert str(dying) == "inference failed: Fatal('the run took its thread with it')"
    np.testing.assert_array_equal(behind[0], rows_for(1) * 2)  # served by the replacement
    assert [type(e) for e in seen] == [Fatal]
    assert batcher._threads == 1  # the replacement only, not the dead thread too


@pytest.mark.parametrize(
    ("error", "runs"),
    [(RuntimeError("the session is broken"), 3), (MemoryError("out of memory"), 1)],
    ids=["repeated failure", "out of memory"],
)
def test_a_systemic_failure_of_a_merged_run_is_not_retried_request_by_request(
    error: Exception, runs: int
) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def run(key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        gate.wait(5)
        calls.append(len(rows))
        raise error

    batcher = DynamicBatcher(run, max_rows=64)

    async def main() -> list[Any]:
        first = asyncio.create_task(batcher.submit("k", rows_for(0)))
        await asyncio.sleep(0.05)
        merged = [asyncio.create_task(batcher.submit("k", rows_for(i))) for i in range(1, 11)]
        await asyncio.sleep(0.01)
        gate.set()
        return list(await asyncio.gather(first, *merged, return_exceptions=True))

    results = asyncio.run(main())
    assert all(r is error for r in results)
    assert calls[0] == 1 and calls[1] == 10  # the first alone, then ten merged
    assert len(calls) - 1 == runs  # the merged run, then at most two alone
