"""Large bodies are decoded on a thread, or parsed in a worker process; small ones inline on the
event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from types import SimpleNamespace

import pytest

from core.errors import Overloaded
from core.settings import Settings
from service.http import offload


def test_bodies_above_the_inline_size_are_decoded_off_the_event_loop() -> None:
    state = SimpleNamespace(
        settings=Settings(inline_body_bytes=1000), decoding=offload.decoding_limiter(1)
    )
    scope = {"app": SimpleNamespace(state=state)}

    async def main() -> tuple[int, int, int]:
        small = await offload.decode(scope, 1000, threading.get_ident)
        large = await offload.decode(scope, 1001, threading.get_ident)
        return threading.get_ident(), small, large

    loop_thread, small, large = asyncio.run(main())
    assert small == loop_thread
    assert large != loop_thread


def _scope(processes: offload.DecodingProcesses | None) -> dict[str, object]:
    settings = Settings(inline_body_bytes=10, process_body_bytes=1000)
    state = SimpleNamespace(
        settings=settings, decoding=offload.decoding_limiter(1), decoding_processes=processes
    )
    return {"app": SimpleNamespace(state=state)}


def test_json_bodies_above_the_process_size_are_parsed_in_a_worker_process() -> None:
    processes = offload.DecodingProcesses(1)
    scope = _scope(processes)

    async def main() -> tuple[int, int, int]:
        threaded = await offload.parse(scope, 1000, os.getpid)
        in_process = await offload.parse(scope, 1001, os.getpid)
        return os.getpid(), threaded, in_process

    try:
        api, threaded, in_process = asyncio.run(main())
    finally:
        processes.close()
    assert threaded == api
    assert in_process != api


def test_without_decoding_processes_large_bodies_stay_on_threads() -> None:
    async def main() -> int:
        return await offload.parse(_scope(None), 10**9, os.getpid)

    assert asyncio.run(main()) == os.getpid()


def test_a_decoding_process_that_dies_is_a_503_and_is_replaced() -> None:
    processes = offload.DecodingProcesses(1)
    scope = _scope(processes)

    async def main() -> int:
        with pytest.raises(Overloaded, match="stopped"):
            await offload.parse(scope, 1001, os._exit, 1)
        return await offload.parse(scope, 1001, os.getpid)

    try:
        assert asyncio.run(main()) != os.getpid()
    finally:
        processes.close()
