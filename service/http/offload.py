"""Work that would hold the event loop for long, done on a few threads instead.

Decoding a request body costs time in proportion to its size: a 60 MB JSON body took seconds of
parsing, during which the event loop answered nobody. Bodies above `inline_body_bytes` are decoded
on threads, at most `decode_threads` at once (the rest wait their turn, so a flood of large bodies
holds a bounded amount of memory in flight); smaller ones, batch-1 requests among them, are
decoded inline, where a thread hop would cost more than the work it moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.types import Scope

T = TypeVar("T")


def decoding_limiter(threads: int) -> CapacityLimiter:
    """The app's bound on bodies decoded at once (kept in `app.state.decoding`)."""
    return CapacityLimiter(threads)


async def decode(scope: Scope, size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`: inline for a body of `size` bytes up to the inline limit, else on a thread."""
    state = scope["app"].state
    if size <= state.settings.inline_body_bytes:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args, limiter=state.decoding)
