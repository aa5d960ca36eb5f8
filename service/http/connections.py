"""uvicorn's HTTP protocols with the connection timeouts it lacks.

uvicorn closes a connection that stays idle for `timeout_keep_alive`, but only after a response:
a connection that never sends a request stays open for good, and once the first byte of a
request has arrived nothing bounds how long its head or its body may take, so a client sending a
byte now and then holds a connection, a task and a buffer for as long as it likes. These
subclasses (`aeserve serve` names them in uvicorn's `http` option) add:

- the keep-alive timeout from the moment a connection opens, not only after a response, and
  again once the unread rest of an answered request's body has arrived;
- `header_timeout_s` for a request's head, from its first byte;
- `body_timeout_s` for its body, from the end of its head.

Past either, the client gets 408 and the connection is closed; the application sees the client
leave. A request whose head and body arrive together, as nearly all do, never arms a timer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings


@functools.cache
def _timeouts() -> tuple[float, float]:
    """(header, body) timeouts of this process: uvicorn builds protocols from an import path,
    so they come from the environment, as every worker's settings do."""
    settings = Settings()
    return settings.header_timeout_s, settings.body_timeout_s


def _answer_408(transport: asyncio.Transport, what: str) -> None:
    body = f'{{"detail":"the request {what} did not arrive in time"}}'.encode()
    transport.write(
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )
    transport.close()


class _Timeouts:
    """Mixed into either uvicorn protocol; both keep the request in progress in `cycle`."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    timeout_keep_alive_handler: Callable[[], None]

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._idle()

    def _idle(self) -> None:
        """Arm the keep-alive timeout (uvicorn arms it only when a response completes, and
        disarms it on every byte received)."""
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        # The rest of the body of a request answered before reading it (a 404, a 503 from
        # admission control): no new head, and the body timer bounds how long it may take.
        unread = before is not None and before.response_complete and before.more_body
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before:  # a new request's head is complete
            self._cancel_head()
        elif unread:
            if not cycle.more_body:  # that body has ended: the connection is idle again
                self._cancel_body()
                self._idle()
            return
        elif (before is None or before.response_complete) and self._head_timer is None:
            header_s, _ = _timeouts()  # part of a head, between requests
            self._head_timer = self.loop.call_later(header_s, self._head_late)
        if cycle is None:
            return
        if cycle.more_body and not cycle.response_complete:
            if self._body_timer is None:
                _, body_s = _timeouts()
                self._body_timer = self.loop.call_later(body_s, self._body_late, cycle)
        else:
            self._cancel_body()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)  # type: ignore[misc]

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            _answer_408(self.transport, "head")

    def _body_late(self, cycle: Any) -> None:
        self._body_timer = None
        if cycle is self.cycle and cycle.more_body and not self.transport.is_closing():
            if cycle.response_started:  # answered without reading it all: just close
                self.transport.close()
            else:
                _answer_408(self.transport, "body")

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None


# mypy sees the mixin's declarations of the protocols' attributes as conflicting with them.
class TimedHttpToolsProtocol(_Timeouts, HttpToolsProtocol):  # type: ignore[misc]
    pass


class TimedH11Protocol(_Timeouts, H11Protocol):  # type: ignore[misc]
    pass


def protocol_path() -> str:
    """uvicorn's `http` option: httptools where installed (uvicorn's own choice), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return f"{__name__}:TimedH11Protocol"
    return f"{__name__}:TimedHttpToolsProtocol"
