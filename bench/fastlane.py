"""What the middleware stack costs the fast lane: event-loop CPU per batch-1 /score request.

    python -m bench.fastlane            # prints a table; reuses bench/.work's models

Three ways to serve the same request, measured in one process in alternating rounds, with
the ASGI app called directly (no sockets), 8 requests in flight as in `make bench`:

- `lane in the stack`: the app as `create_app` builds it, the fast lane the innermost
  middleware (every middleware applies to its requests);
- `lane alone`: the same fast lane called without any middleware around it, which is what a
  lane in front of the stack costs (and skips);
- `FastAPI routes`: the fast lane off, every request routed and its dependencies solved.

The figure is the event-loop thread's CPU time (`time.thread_time`) per request: onnxruntime
runs on the batcher's threads, so this is the HTTP layer's own cost, and a busy neighbour
stretches it far less than wall-clock throughput.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Scope

from bench.prepare import WORK, models
from core.settings import Settings
from service.http.app import create_app
from service.http.fastlane import InferenceFastLane

REPOSITORY = WORK / "repository"
CLIENTS = 8
REQUESTS = 4000
ROUNDS = 5


def _request(body: bytes) -> Callable[[ASGIApp], Awaitable[None]]:
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def one(app: ASGIApp) -> None:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/score",
            "raw_path": b"/score",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            # Starlette sets it on the way in; the lane alone is called past that point.
            "app": getattr(app, "fastapi", app),
        }
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"/score answered {sent[0]['status']}: {sent[-1]}")

    return one


async def _per_request_us(app: ASGIApp, one: Callable[[ASGIApp], Awaitable[None]]) -> float:
    start = time.thread_time()
    for _ in range(REQUESTS // CLIENTS):
        await asyncio.gather(*(one(app) for _ in range(CLIENTS)))
    return (time.thread_time() - start) / REQUESTS * 1e6


async def measure(model: str, body: bytes) -> dict[str, list[float]]:
    settings = Settings(model_repository=REPOSITORY, default_model=model)
    with_lane = create_app(settings)
    without_lane = create_app(settings.model_copy(update={"inference_fast_lane": False}))
    one = _request(body)
    results: dict[str, list[float]] = {
        "lane in the stack": [],
        "lane alone": [],
        "FastAPI routes": [],
    }
    async with (
        with_lane.router.lifespan_context(with_lane),
        without_lane.router.lifespan_context(without_lane),
    ):
        lane_alone = InferenceFastLane(with_lane.router, fastapi=with_lane)
        ways: dict[str, ASGIApp] = {
            "lane in the stack": with_lane,
            "lane alone": lane_alone,
            "FastAPI routes": without_lane,
        }
        for app in ways.values():  # warm up: sessions, arenas, caches
            for _ in range(200):
                await one(app)
        for _ in range(ROUNDS):
            for name, app in ways.items():
                results[name].append(await _per_request_us(app, one))
    return results


def main() -> None:
    model = models(REPOSITORY)[0]
    rows = model.data[:1].tolist()
    results = asyncio.run(measure(model.name, json.dumps({"vectors": rows}).encode()))
    base = statistics.median(results["lane alone"])
    print(
        f"/score, batch 1 JSON, {model.name} (d = {model.dim}), {CLIENTS} in flight, "
        f"median of {ROUNDS} alternating rounds of {REQUESTS} requests"
    )
    print("| way | event-loop CPU per request | vs lane alone |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} µs | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
