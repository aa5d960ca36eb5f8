"""What a followed job's end means to a caller: its record, or `JobFailed`."""

from __future__ import annotations

from core.jobs.records import JobRecord
from service.client.errors import JobFailed


def finished(record: JobRecord) -> JobRecord:
    if record.status == "succeeded":
        return record
    why = f": {record.error}" if record.error else ""
    raise JobFailed(record, f"job {record.job_id} {record.status}{why}")
