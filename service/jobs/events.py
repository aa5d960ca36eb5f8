"""Server-sent events for one job: a `progress` event per epoch, then `done` with the record.

Backend-neutral: it polls the record, and sends every history entry it has not sent yet, so no
epoch is skipped however fast the training runs. Each `progress` event has its epoch as its id,
so a client that reconnects with `Last-Event-ID: N` (as EventSource does) resumes after epoch N.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.to_thread

from core.jobs.records import JobProgress
from service.jobs.backend import JobBackend

POLL_S = 0.2
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream (a long first epoch)."""


def server_sent_event(event: str, data: str, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


async def job_events(backend: JobBackend, job_id: str, after: int = 0) -> AsyncIterator[bytes]:
    """The job's events from the epoch after `after` (the client's Last-Event-ID) on."""
    sent = after
    quiet_since = anyio.current_time()
    while True:
        record = await anyio.to_thread.run_sync(backend.get, job_id)
        for entry in record.history:
            if entry.epoch <= sent:
                continue
            progress = JobProgress(epochs=record.progress.epochs, **entry.model_dump())
            yield server_sent_event("progress", progress.model_dump_json(), entry.epoch)
            sent = entry.epoch
            quiet_since = anyio.current_time()
        if record.finished:
            yield server_sent_event("done", record.model_dump_json())
            return
        if anyio.current_time() - quiet_since > KEEPALIVE_S:
            yield b": keep-alive\n\n"
            quiet_since = anyio.current_time()
        await anyio.sleep(POLL_S)
