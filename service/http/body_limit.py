"""Body size limit, enforced before the body is read: by Content-Length, then while streaming."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.encoding import dump_json


class BodyTooLarge(Exception):
    pass


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, None when it sends none (chunked) or an unreadable one."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """Whether the request's Content-Length alone already exceeds the limit."""
    length = declared_length(scope)
    return length is not None and length > max_bytes


async def reject(scope: Scope, send: Send, max_bytes: int) -> None:
    """The 413 answer, with the connection closed: the rest of the body is not read."""
    path = scope.get("path", "")
    key = "error" if path.startswith("/v2") else "detail"
    body = dump_json({key: f"request body is larger than the limit of {max_bytes} bytes"})
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None:
            if length > self.max_bytes:
                await reject(scope, send, self.max_bytes)
                return
            # The server delivers no more than a declared length, so nothing is left to count:
            # no wrappers on the hot path.
            await self.app(scope, receive, send)
            return
        received = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app caught BodyTooLarge and answers anyway (FastAPI's body and form readers
                # turn any exception into 400 "There was an error parsing the body"): the answer
                # is the 413 all the same.
                if not started:
                    started = True
                    await reject(scope, send, self.max_bytes)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await reject(scope, send, self.max_bytes)
