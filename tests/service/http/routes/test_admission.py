"""Inference requests beyond `max_inference_in_progress` are refused at the door: 503 with
`Retry-After` as soon as the head arrives; after a small declared body the connection stays open
(the server skips the body), after a large or chunked one it is closed; a client still sending its body holds no place,
and every other route is never refused."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import pytest
import uvicorn
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.admission import InferenceAdmission
from service.http.app import create_app
from service.http.concurrency_limit import FEWEST, WINDOW_S


class _HeldApp:
    """An inner app that reads the whole body, then waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        while (await receive()).get("more_body"):
            pass
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _scope(path: str, method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": []}


def _body(*chunks: bytes, then_wait: asyncio.Event | None = None) -> Any:
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks[:-1]]
    messages.append({"type": "http.request", "body": chunks[-1], "more_body": False})

    async def receive() -> dict[str, Any]:
        if len(messages) == 1 and then_wait is not None:
            await then_wait.wait()
        return messages.pop(0)

    return receive


async def _call(app: Any, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def _one_in_progress() -> tuple[_HeldApp, InferenceAdmission, asyncio.Task[Any]]:
    """An admission of limit 1 with one /score request in progress, held until released."""
    inner = _HeldApp()
    app = InferenceAdmission(inner, limit=1)
    first = asyncio.create_task(_call(app, _scope("/score"), _body(b"{}")))
    await asyncio.sleep(0.01)
    return inner, app, first


def test_a_request_beyond_the_limit_is_a_503_before_its_body_is_read() -> None:
    async def main() -> None:
        inner, app, first = await _one_in_progress()
        assert app.in_progress == 1

        async def never() -> dict[str, Any]:
            raise AssertionError("the refused request's body was read")

        scope = _scope("/score")
        refused = await _call(app, scope, never)
        start, body = refused
        assert start["status"] == 503
        headers = dict(start["headers"])
        assert headers[b"retry-after"] == b"1"
        assert headers[b"connection"] == b"close"
        assert "retry shortly" in json.loads(body["body"])["detail"]
        assert scope["route"].path == "/score"  # the metrics' route label
        assert inner.entered == 1
        inner.release.set()
        assert (await first)[0]["status"] == 200
        assert app.in_progress == 0

    asyncio.run(main())


def test_refusing_for_longer_than_a_window_lowers_the_bound_and_answers_raise_it() -> None:
    async def main() -> None:
        inner = _HeldApp()
        app = InferenceAdmission(inner, limit=8, latency_target_s=0.025)
        held = [asyncio.create_task(_call(app, _scope("/score"), _body(b"{}"))) for _ in range(8)]
        await asyncio.sleep(0.01)
        assert app.in_progress == 8 and app.bound is not None
        for _ in range(3):  # nothing answered while refusing: the bound halves each window
            await asyncio.sleep(WINDOW_S)
            (start, _) = await _call(app, _scope("/score"), _body(b"{}"))
            assert start["status"] == 503
        assert app.bound.limit == FEWEST
        inner.release.set()
        await asyncio.gather(*held)
        for _ in range(12):  # answered, nothing refused: back up to the ceiling
            await asyncio.sleep(WINDOW_S)
            (start, _) = await _call(app, _scope("/score"), _body(b"{}"))
            assert start["status"] == 200
        assert app.bound.limit == 8

    asyncio.run(main())


def test_a_503_from_further_in_lowers_the_bound_as_the_door_s_own_refusals_do() -> None:
    # The batcher's queue bound answers 503 after the body was read; that is overload too.
    async def shedding(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def main() -> None:
        app = InferenceAdmission(shedding, limit=8, latency_target_s=0.025)
        assert app.bound is not None
        for _ in range(3):
            await asyncio.sleep(WINDOW_S)
            (start, _) = await _call(app, _scope("/score"), _body(b"{}"))
            assert start["status"] == 503
        assert app.bound.limit == FEWEST and app.in_progress == 0

    asyncio.run(main())


class _ThreadHeldApp:
    """`_HeldApp` for a server in another thread: released by a `threading.Event`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.entered.set()
        while (await receive()).get("more_body"):
            pass
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})


class _CountingReads:
    """Counts the body messages the application below it reads."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reads = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            self.reads += 1
            return await receive()

        await self.app(scope, counted, send)


@contextmanager
def _uvicorn(app: Any, protocol: str) -> Iterator[int]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws="none",
        lifespan="off",
        http=f"service.http.connections:{protocol}",
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield served.servers[0].sockets[0].getsockname()[1]
    finally:
        served.should_exit = True
        thread.join(10)


def _read_answer(stream: BinaryIO) -> bytes:
    """The head of the next response on `stream`, its body read past (all carry Content-Length)."""
    head = b""
    while (line := stream.readline()) not in (b"\r\n", b""):
        head += line
    match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert match is not None, head
    stream.read(int(match[1]))
    return head


@pytest.mark.parametrize("protocol", ["TimedHttpToolsProtocol", "TimedH11Protocol"])
def test_a_small_refused_body_is_skipped_unread_and_the_connection_kept(protocol: str) -> None:
    """The application never reads it (it is answered at once); the server skips its bytes and
    takes the next request on the same connection. Closing made each refused client connect
    again: under overload the new connections piled up past uvicorn's own limit, whose 503s
    carry no Retry-After."""
    inner = _ThreadHeldApp()
    app = _CountingReads(InferenceAdmission(inner, limit=1))
    with _uvicorn(app, protocol) as port:
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert inner.entered.wait(10)
        refused = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = b"[" + b"0," * 100_000 + b"0]"  # 200 KB, the next request right behind it
        request = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        refused.sendall(request % (len(body), body) * 2)
        answers = refused.makefile("rb")
        for _ in range(2):
            head = _read_answer(answers)
            assert head.startswith(b"HTTP/1.1 503")
            assert b"retry-after: 1" in head.lower()
            assert b"connection: close" not in head.lower()
        assert app.reads == 1  # the held request's body; the refused ones were never read
        inner.release.set()
        assert _read_answer(held.makefile("rb")).startswith(b"HTTP/1.1 200")
        held.close()
        refused.close()


def test_a_client_that_expects_100_continue_is_refused_before_it_sends_its_body() -> None:
    """uvicorn sends `100 Continue` only when the application first reads the body; a refusal
    reads nothing, so such a client's first answer is the 503 and its body is never sent."""
    inner = _ThreadHeldApp()
    with _uvicorn(InferenceAdmission(inner, limit=1), "TimedHttpToolsProtocol") as port:
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert inner.entered.wait(10)
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head = _read_answer(waiting.makefile("rb"))
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"retry-after: 1" in head.lower()
        inner.release.set()
        assert _read_answer(held.makefile("rb")).startswith(b"HTTP/1.1 200")
        held.close()
        waiting.close()


def test_a_client_still_sending_its_body_holds_no_place() -> None:
    async def main() -> None:
        inner = _HeldApp()
        app = InferenceAdmission(inner, limit=1)
        body_sent = asyncio.Event()
        slow = asyncio.create_task(
            _call(app, _scope("/encode"), _body(b"[", b"]", then_wait=body_sent))
        )
        await asyncio.sleep(0.01)
        assert app.in_progress == 0
        inner.release.set()
        answered = await _call(app, _scope("/encode"), _body(b"{}"))
        assert answered[0]["status"] == 200
        body_sent.set()
        await slow

    asyncio.run(main())


def test_protocol_inference_is_refused_in_its_own_words_and_other_routes_never() -> None:
    async def main() -> None:
        inner, app, first = await _one_in_progress()
        scope = _scope("/v2/models/m/versions/2/infer")
        start, body = await _call(app, scope, _body(b"{}"))
        assert start["status"] == 503
        assert "error" in json.loads(body["body"])
        assert scope["route"].path == "/v2/models/{name}/versions/{version}/infer"
        others = [
            asyncio.create_task(_call(app, _scope(path, method), _body(b"")))
            for path, method in [("/models", "GET"), ("/train", "POST"), ("/score", "GET")]
        ]
        await asyncio.sleep(0.01)
        assert inner.entered == 4  # none of them was refused
        inner.release.set()
        await asyncio.gather(first, *others)

    asyncio.run(main())


def test_requests_one_after_another_never_meet_the_limit(settings: Settings) -> None:
    one = settings.model_copy(update={"max_inference_in_progress": 1})
    with TestClient(create_app(one)) as client:
        for _ in range(5):
            assert (
                client.post("/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).status_code == 200
            )
