"""The dynamic batcher: merged runs give each request exactly its own rows' results, in order."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pytest

from service.inference.batching import DynamicBatcher, running_loop


class Recorder:
    """A stand-in session: output = 2·rows (+ key-dependent offset); records each call's rows."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[Hashable, int]] = []
        self.gate = gate

    def __call__(self, key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        if self.gate is not None:
            self.gate.wait(5)
        if np.isnan(rows).any():
            raise ValueError("NaN in the batch")
        self.calls.append((key, len(rows)))
        offset = 100.0 if key == "other" else 0.0
        return [rows * 2 + offset, rows.sum(axis=1)]


def rows_for(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 3), float(i), dtype=np.float32)


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=64, max_delay_s=0.02)

    async def main() -> list[list[np.ndarray]]:
        return await asyncio.gather(
            *(batcher.submit("k", rows_for(i, 1 + i % 3)) for i in range(50))
        )

    results = asyncio.run(main())
    for i, (doubled, sums) in enumerate(results):
        np.testing.assert_array_equal(doubled, rows_for(i, 1 + i % 3) * 2)
        np.testing.assert_array_equal(sums, rows_for(i, 1 + i % 3).sum(axis=1))
    assert sum(n for _, n in run.calls) == sum(1 + i % 3 for i in range(50))
    assert len(run.calls) < 50  # merged
    assert max(n for _, n in run.calls) <= 64


def test_requests_read_in_one_loop_iteration_share_one_run() -> None:
    """A waiting worker is woken once the loop has queued everything that arrived together."""
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=64)

    async def main() -> list[list[np.ndarray]]:
        await batcher.submit("k", rows_for(0))  # starts the worker
        await asyncio.sleep(0.05)  # which is then waiting for the next request
        return await asyncio.gather(*(batcher.submit("k", rows_for(i)) for i in range(1, 11)))

    for i, (doubled, _) in enumerate(asyncio.run(main()), start=1):
        np.testing.assert_array_equal(doubled, rows_for(i) * 2)
    assert run.calls == [("k", 1), ("k", 10)]


@pytest.mark.parametrize(
    ("enabled", "keys", "rows"),
    [(True, ("k", "k"), 8), (True, ("k", "other"), 1), (False, ("k", "k"), 1)],
    ids=["more than a batch", "two keys", "batching off"],
)
def test_a_worker_leaving_requests_behind_wakes_another(
    enabled: bool, keys: tuple[str, str], rows: int
) -> None:
    both_running = threading.Barrier(2, timeout=2)
    held: set[int] = set()

    def run(key: Hashable, batch: np.ndarray) -> Sequence[np.ndarray]:
        if int(batch[0, 0]) in held:  # each is held until the other one runs too
            both_running.wait()
        return [batch * 2]

    batcher = DynamicBatcher(run, max_rows=8, workers=2, enabled=enabled, idle_s=30)

    async def main() -> None:
        # A second worker starts while the first holds a request and half a batch waits.
        held.update((0, 1))
        await asyncio.gather(*(batcher.submit("k", rows_for(i, 8)) for i in (0, 1)))
        await asyncio.sleep(0.05)  # both are now waiting
        held.clear()
        held.update((2, 3))
        await asyncio.gather(*(batcher.submit(keys[i - 2], rows_for(i, rows)) for i in (2, 3)))

    asyncio.run(main())


def test_order_is_kept_under_concurrency_from_many_tasks() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=16)

    async def client(i: int) -> tuple[int, np.ndarray]:
        await asyncio.sleep(np.random.default_rng(i).uniform(0, 0.005))
        (doubled, _) = await batcher.submit("k", rows_for(i, 2))
        return i, doubled

    async def main() -> list[tuple[int, np.ndarray]]:
        return await asyncio.gather(*(client(i) for i in range(300)))

    for i, doubled in asyncio.run(main()):
        np.testing.assert_array_equal(doubled, rows_for(i, 2) * 2)
    assert all(n <= 16 for _, n in run.calls)


def test_requests_with_other_keys_are_not_merged() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=64, max_delay_s=0.02)

    async def main() -> list[list[np.ndarray]]:
        keys = ["k", "other"] * 10
        return await asyncio.gather(*(batcher.submit(k, rows_for(i)) for i, k in enumerate(keys)))

    results = asyncio.run(main())
    for i, (doubled, _) in enumerate(results):
        np.testing.assert_array_equal(doubled, rows_for(i) * 2 + (100.0 if i % 2 else 0.0))
    assert {key for key, _ in run.calls} == {"k", "other"}


def test_a_request_larger_than_max_rows_runs_alone_and_whole() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=4, max_delay_s=0.02)

    async def main() -> list[list[np.ndarray]]:
        return await asyncio.gather(
            batcher.submit("k", rows_for(1, 10)), batcher.submit("k", rows_for(2, 3))
        )

    big, small = asyncio.run(main())
    np.testing.assert_array_equal(big[0], rows_for(1, 10) * 2)
    np.testing.assert_array_equal(small[0], rows_for(2, 3) * 2)
    assert sorted(n for _, n in run.calls) == [3, 10]


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=64, max_delay_s=0.05)
    bad = np.full((1, 3), np.nan, dtype=np.float32)

    async def main() -> list[Any]:
        requests = [batcher.submit("k", rows_for(i)) for i in range(5)]
        requests.insert(2, batcher.submit("k", bad))
        return await asyncio.gather(*requests, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[2], ValueError)
    good = [r for j, r in enumerate(results) if j != 2]
    for i, (doubled, _) in enumerate(good):
        np.testing.assert_array_equal(doubled, rows_for(i) * 2)


def test_a_cancelled_client_does_not_stall_the_others() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = DynamicBatcher(run, max_rows=64)

    async def main() -> tuple[Any, ...]:
        running = asyncio.create_task(batcher.submit("k", rows_for(0)))  # holds the worker
        await asyncio.sleep(0.05)
        leaving = asyncio.create_task(batcher.submit("k", rows_for(1)))
        staying = asyncio.create_task(batcher.submit("k", rows_for(2)))
        await asyncio.sleep(0.01)
        leaving.cancel()
        running.cancel()  # cancelled while its batch runs: the result is dropped
        gate.set()
        done = await asyncio.wait_for(staying, 2)
        after = await asyncio.wait_for(batcher.submit("k", rows_for(3)), 2)
        return leaving, running, done, after

    leaving, running, done, after = asyncio.run(main())
    assert leaving.cancelled() and running.cancelled()
    np.testing.assert_array_equal(done[0], rows_for(2) * 2)
    np.testing.assert_array_equal(after[0], rows_for(3) * 2)
    assert (("k", 1) in run.calls) and sum(n for _, n in run.calls) == 3  # row 1 never ran


def test_the_queue_delay_waits_for_company_up_to_max_rows() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=8, max_delay_s=0.2)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(batcher.submit("k", rows_for(i)) for i in range(8)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    assert run.calls == [("k", 8)]
    assert elapsed < 0.2  # a full batch does not wait out the delay


def test_the_worker_exits_when_idle_and_comes_back() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=8, idle_s=0.05)

    async def one(i: int) -> np.ndarray:
        return (await batcher.submit("k", rows_for(i)))[0]

    np.testing.assert_array_equal(asyncio.run(one(1)), rows_for(1) * 2)
    deadline = time.monotonic() + 2
    while batcher.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not batcher.running
    np.testing.assert_array_equal(asyncio.run(one(2)), rows_for(2) * 2)


def test_turned_off_every_request_runs_alone() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=64, enabled=False)

    async def main() -> list[list[np.ndarray]]:
        return await asyncio.gather(*(batcher.submit("k", rows_for(i)) for i in range(10)))

    for i, (doubled, _) in enumerate(asyncio.run(main())):
        np.testing.assert_array_equal(doubled, rows_for(i) * 2)
    assert [n for _, n in run.calls] == [1] * 10  # one call each, on the same worker thread


@pytest.mark.parametrize("max_rows", [1, 3])
def test_max_rows_bounds_every_merged_run(max_rows: int) -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, max_rows=max_rows, max_delay_s=0.01)

    async def main() -> None:
        await asyncio.gather(*(batcher.submit("k", rows_for(i)) for i in range(20)))

    asyncio.run(main())
    assert all(n <= max_rows for _, n in run.calls)
    assert sum(n for _, n in run.calls) == 20


def test_a_second_worker_takes_large_requests_while_the_first_is_busy() -> None:
    first_call = threading.Event()
    release = threading.Event()

    def run(key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        if rows[0, 0] == 0:  # the first request holds its worker until released
            first_call.set()
            release.wait(5)
        return [rows * 2]

    batcher = DynamicBatcher(run, max_rows=8, workers=2)

    async def main() -> tuple[bool, bool]:
        holding = asyncio.create_task(batcher.submit("k", rows_for(0)))
        while not first_call.is_set():
            await asyncio.sleep(0.001)
        small = asyncio.create_task(batcher.submit("k", rows_for(1, 1)))
        await asyncio.sleep(0.1)
        small_waited = not small.done()  # too little waiting to start a second thread
        large = asyncio.create_task(batcher.submit("k", rows_for(2, 8)))
        await asyncio.wait_for(asyncio.gather(small, large), 2)  # beside the busy worker
        still_holding = not holding.done()
        release.set()
        await holding
        return small_waited, still_holding

    small_waited, still_holding = asyncio.run(main())
    assert small_waited and still_holding


def test_running_loop_is_each_threads_current_one() -> None:
    async def both() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return running_loop(), asyncio.get_running_loop()

    for _ in range(3):  # a new loop each time in this thread: never the remembered old one
        remembered, actual = asyncio.run(both())
        assert remembered is actual
    seen: list[bool] = []
    threads = [
        threading.Thread(target=lambda: seen.append(operator.is_(*asyncio.run(both()))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [True] * 4
