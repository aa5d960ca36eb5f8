"""Large bodies are decoded on a thread, small ones inline on the event loop."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

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
