"""Admission at the door: inference requests beyond those already being worked on get a 503.

Under a load above what the server can answer, the requests that wait are not only in the
batcher's bounded queue: every request whose body is read, decoded and answered shares the one
event loop with all the others, so each waits in proportion to how many there are (Little's law:
1,000 open requests at 600 answered a second is 1.6 s each). A bound on requests in progress
keeps that wait short; the excess is refused with `Retry-After`, which costs the loop far less
than serving it. The refusal is sent as soon as the head arrives, unread by the application: for
a body of at most `DISCARD_BYTES` (as declared) the connection stays open, and uvicorn's protocol
(either of them) skips the rest of the body as it arrives, without a message to the
application for each part of it; closing it made every refused client connect again, and under
overload the new connections piled up past uvicorn's own limit (whose 503s carry no
`Retry-After`). A larger or chunked body is not worth reading: the connection is closed. A
client that sends `Expect: 100-continue` is refused before it sends its body at all (uvicorn
sends `100 Continue` only when the application first reads); for the others, taking in the
skipped body is most of what a refusal costs (bench/results/reliability.md).

A request counts as in progress once its whole body has arrived: a client sending its body
slowly holds no place (the body timeout cuts it off), so slow clients cannot lock others out.
Under overload the bound itself comes down to what the server answers within a latency target
(service/http/concurrency_limit.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.body_limit import declared_length
from service.http.concurrency_limit import ConcurrencyLimit
from service.http.encoding import dump_json

DISCARD_BYTES = 1 << 20
"""Largest declared body skipped after a refusal, keeping the connection open."""

_INFERENCE = frozenset({"/score", "/encode", "/decode", "/reconstruct"})
_V2_INFER = "/v2/models/{name}/infer"
_V2_VERSION_INFER = "/v2/models/{name}/versions/{version}/infer"


@dataclass(frozen=True)
class _Template:
    """The route label a refused request is counted under (read as `scope["route"].path`)."""

    path: str


def _template(scope: Scope) -> str | None:
    """The inference route template of the request's path, None for any other route."""
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path in _INFERENCE:
        return path
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return _V2_VERSION_INFER if "/versions/" in path else _V2_INFER
    return None


class InferenceAdmission:
    def __init__(
        self, app: ASGIApp, limit: int | None, latency_target_s: float | None = None
    ) -> None:
        self.app = app
        self.bound = None if limit is None else ConcurrencyLimit(limit, latency_target_s)
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bound = self.bound
        if scope["type"] != "http" or bound is None:
            await self.app(scope, receive, send)
            return
        template = _template(scope)
        if template is None:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= bound.limit:
            bound.refused()
            scope["route"] = _Template(template)
            length = declared_length(scope)
            keep_alive = length is not None and length <= DISCARD_BYTES
            await _refuse(template, send, self.in_progress, keep_alive=keep_alive)
            return
        counted = False

        async def counting_receive() -> Message:
            nonlocal counted
            message = await receive()
            if not counted and message["type"] == "http.request" and not message.get("more_body"):
                counted = True
                self.in_progress += 1
            return message

        shed = False

        async def watching_send(message: Message) -> None:
            # A 503 from further in (the batcher's queue bound) sheds load as the door does, only
            # later, once the body was read: the bound comes down for it as for its own refusals.
            nonlocal shed
            if message["type"] == "http.response.start" and message["status"] == 503:
                shed = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        finally:
            if shed:
                bound.refused()
            if counted:
                self.in_progress -= 1
                if not shed:
                    bound.answered()


async def _refuse(template: str, send: Send, in_progress: int, *, keep_alive: bool) -> None:
    key = "error" if template.startswith("/v2") else "detail"
    message = (
        f"the server is working on {in_progress} inference requests, its most for now; "
        "retry shortly"
    )
    body = dump_json({key: message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    if not keep_alive:
        headers.append((b"connection", b"close"))  # the body is not worth reading
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
