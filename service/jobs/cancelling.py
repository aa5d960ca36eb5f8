"""DELETE /jobs/{id}: ask for the cancellation, then wait for the job to stop without holding a
thread.

A running job is stopped by whichever dispatcher or worker owns it (maybe in another process),
within a tick or two; the answer waits for that, so that it says "cancelled". The wait is an
asyncio sleep between reads: it used to be a `time.sleep` loop in FastAPI's threadpool, so a few
cancellations of jobs whose owner was slow to stop held threads that every other synchronous
route needs, for up to `CANCEL_WAIT_S` each.
"""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool

from core.jobs.records import JobRecord
from service.jobs.backend import JobBackend

CANCEL_WAIT_S = 10.0
"""How long DELETE /jobs/{id} waits for a running job to stop before answering."""
POLL_S = 0.05


async def cancel_and_wait(jobs: JobBackend, job_id: str) -> JobRecord:
    """Cancel `job_id`; its record once it has stopped, or as it is after `CANCEL_WAIT_S`."""
    record = await run_in_threadpool(jobs.cancel, job_id)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while not record.finished and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        record = await run_in_threadpool(jobs.get, job_id)
    return record
