"""/train, /jobs: submit a training job, follow it, cancel it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from starlette.responses import StreamingResponse

from core.jobs.records import JobRecord
from service.http.deps import AdminKey, DatasetsDep, JobsDep, RepositoryDep, SettingsDep
from service.http.schemas import ErrorResponse
from service.http.train_body import OPENAPI_BODY, TrainBodyDep
from service.jobs.cancelling import cancel_and_wait
from service.jobs.events import job_events
from service.jobs.schemas import JobList, TrainResponse
from service.jobs.submission import submit

router = APIRouter(tags=["training"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


@router.post(
    "/train",
    status_code=202,
    response_model=TrainResponse,
    responses=_errors(401, 409, 413, 422),
    dependencies=[AdminKey],
    openapi_extra=OPENAPI_BODY,  # read by TrainBodyDep, off the event loop
)
def train(
    body: TrainBodyDep,
    response: Response,
    jobs: JobsDep,
    datasets: DatasetsDep,
    repository: RepositoryDep,
    settings: SettingsDep,
) -> TrainResponse:
    """Queue a job that trains a new version of `name`; follow it at `Location`."""
    record = submit(
        body.request, jobs, datasets, repository, settings.max_parameters, rows=body.rows
    )
    response.headers["Location"] = f"/jobs/{record.job_id}"
    return TrainResponse(job_id=record.job_id, status=record.status)


@router.get("/jobs", response_model=JobList, responses=_errors(401), dependencies=[AdminKey])
def list_jobs(
    jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=1000, description="Most jobs.")] = 100
) -> JobList:
    """Jobs, newest first."""
    return JobList(jobs=jobs.list(limit))


@router.get(
    "/jobs/{job_id}", response_model=JobRecord, responses=_errors(401, 404), dependencies=[AdminKey]
)
def get_job(job_id: str, jobs: JobsDep) -> JobRecord:
    """Status, progress, loss history and, once it succeeded, the version it published."""
    return jobs.get(job_id)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobRecord,
    responses=_errors(401, 404, 409),
    dependencies=[AdminKey],
)
async def cancel_job(job_id: str, jobs: JobsDep) -> JobRecord:
    """Cancel a queued or running job (409 once it has finished); it publishes nothing. The
    answer waits (up to 10 s) for a running job to stop."""
    return await cancel_and_wait(jobs, job_id)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_errors(401, 404)},
    dependencies=[AdminKey],
)
def job_event_stream(
    job_id: str,
    jobs: JobsDep,
    last_event_id: Annotated[
        int,
        Header(
            alias="Last-Event-ID",
            ge=0,
            description="Resume after this epoch: the `id` of the last event received.",
        ),
    ] = 0,
) -> StreamingResponse:
    """Server-sent events: `progress` after each epoch (its `id` is the epoch), then `done` with
    the final record. A reconnecting client's `Last-Event-ID` resumes after that epoch."""
    jobs.get(job_id)  # 404 now rather than an empty stream
    return StreamingResponse(
        job_events(jobs, job_id, after=last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
