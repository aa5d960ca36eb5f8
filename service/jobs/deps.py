"""Dependency aliases of the /train, /jobs and /datasets routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.datasets import DatasetStore
from service.jobs.backend import JobBackend


def get_jobs(request: Request) -> JobBackend:
    jobs: JobBackend = request.app.state.jobs
    return jobs


def get_datasets(request: Request) -> DatasetStore:
    datasets: DatasetStore = request.app.state.datasets
    return datasets


JobsDep = Annotated[JobBackend, Depends(get_jobs)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
