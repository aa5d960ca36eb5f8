"""Closed- and open-loop HTTP/1.1 load on loopback, for bench/reliability.py's `overload`.

Closed loop: a fixed number of clients, each sending its next request when the last is answered,
measures the rate at which the server saturates. Open loop: requests fall due at a fixed rate
whatever the answers, over a bounded pool of connections (as wrk2 sends them: a request due while
every connection is busy waits for one, its latency counted from when it was due); a server that
queues without bound shows it as latency growing for as long as the run lasts, one that sheds
load as fast refusals.

A few lines of asyncio streams rather than an HTTP client library: the generator shares the
machine's cores with the server, and a library's per-request cost (httpx: ~10x these) would be
measured as the server's.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Outcome:
    """Every request's status (0: no answer within the timeout) and latency."""

    seconds: float
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    retry_after: int = 0  # 503 answers that carried a Retry-After header
    errors: Counter[str] = field(default_factory=Counter)  # why no answer came, for status 0

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses if s == status)

    def rate(self, status: int = 200) -> float:
        return self.count(status) / self.seconds

    def percentile_ms(self, q: float, status: int | None = 200) -> float:
        chosen = [
            latency
            for s, latency in zip(self.statuses, self.latencies, strict=True)
            if status is None or s == status
        ]
        return float(np.percentile(np.array(chosen) * 1000, q)) if chosen else float("nan")


def request_bytes(path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Closed(ConnectionResetError):
    """An answer after which the server closes the connection."""

    def __init__(self, status: int, retry_after: bool) -> None:
        super().__init__(f"{status}, then the server closed the connection")
        self.status, self.retry_after = status, retry_after


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send one request, read its answer: the status and whether it had `Retry-After`."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, retry_after, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "retry-after":
                retry_after = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            raise _Closed(status, retry_after)
        return status, retry_after

    def closed_by_server(self) -> bool:
        """Whether the server has closed this idle connection (its keep-alive timeout)."""
        return self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


async def _connect(port: int) -> _Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    return _Connection(reader, writer)


async def closed_loop(port: int, request: bytes, clients: int, seconds: float) -> Outcome:
    """`clients` connections, each sending its next request as soon as the last is answered."""
    outcome = Outcome(seconds)
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        connection = await _connect(port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, retry_after = await connection.exchange(request)
            outcome.statuses.append(status)
            outcome.latencies.append(time.perf_counter() - started)
            outcome.retry_after += retry_after
        connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcome


async def open_loop(
    port: int,
    request: bytes,
    rate: float,
    seconds: float,
    connections: int = 256,
    timeout: float = 30,
) -> Outcome:
    """`rate` requests a second for `seconds` over at most `connections` connections, as wrk2
    sends them: a request due while every connection is busy waits for one, and its latency
    counts from when it was due, so a server that falls behind is charged for it."""
    outcome = Outcome(seconds)
    idle: list[_Connection] = []
    pool = asyncio.Semaphore(connections)

    async def one(due: float) -> None:
        connection: _Connection | None = None
        reused = False
        async with pool:
            try:
                while idle and idle[-1].closed_by_server():
                    idle.pop().close()  # as HTTP clients' pools do before reusing one
                reused = bool(idle)
                connection = idle.pop() if idle else await _connect(port)
                exchange = connection.exchange(request)
                status, retry_after = await asyncio.wait_for(exchange, timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                if connection is not None:
                    connection.close()
                # A 503 with `Connection: close` is an answer; anything else here is none.
                status = getattr(exc, "status", 0)
                if not status:
                    where = "a reused connection" if reused else "a new connection"
                    outcome.errors[f"{type(exc).__name__} on {where}"] += 1
                retry_after = getattr(exc, "retry_after", False)
            else:
                idle.append(connection)
        outcome.statuses.append(status)
        outcome.latencies.append(time.perf_counter() - due)
        outcome.retry_after += retry_after

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    tasks: list[asyncio.Task[None]] = []
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return outcome
