"""Datasets and the jobs that read them: a job is recorded only on a dataset that exists, and a
dataset is deleted only while no queued or running job reads it. Each is one step under the
backend's dataset lock, so a DELETE /datasets/{id} and a POST /train naming it never interleave.
"""

from __future__ import annotations

import logging
from datetime import datetime

from core.datasets import DatasetInfo, DatasetNotFound, DatasetStore
from core.errors import Conflict
from core.jobs.records import JobRecord, JobSpec
from service.jobs.backend import JobBackend

log = logging.getLogger("aeserve.jobs")


def record_job(spec: JobSpec, jobs: JobBackend, datasets: DatasetStore) -> JobRecord:
    """Queue a validated job, its dataset checked (and marked used) under the lock."""
    with jobs.dataset_lock(spec.dataset):
        try:
            datasets.touch(spec.dataset)
        except DatasetNotFound:
            raise Conflict(
                f"dataset {spec.dataset!r} was deleted while this job was being submitted; "
                "upload it again"
            ) from None
        return jobs.submit(spec)


def delete_unused(dataset: str, jobs: JobBackend, datasets: DatasetStore) -> DatasetInfo:
    """Delete a dataset (404 if there is none); 409 while an unfinished job reads it."""
    with jobs.dataset_lock(dataset):
        training = jobs.unfinished_using(dataset)
        if training:
            raise Conflict(
                f"dataset {dataset!r} is in use by unfinished job(s) {', '.join(training)}; "
                "cancel them or wait until they end"
            )
        return datasets.delete(dataset)


def sweep_datasets(jobs: JobBackend, datasets: DatasetStore, cutoff: datetime) -> list[str]:
    """Delete the datasets untouched since `cutoff` that no unfinished job reads."""
    removed: list[str] = []
    for dataset in datasets.untouched_since(cutoff):
        with jobs.dataset_lock(dataset):
            # Checked again under the lock: a job may have been submitted on it meanwhile.
            if dataset not in datasets.untouched_since(cutoff) or jobs.unfinished_using(dataset):
                continue
            try:
                datasets.delete(dataset)
            except DatasetNotFound:
                continue
        removed.append(dataset)
    if removed:
        log.info("removed %d dataset(s) untouched since %s", len(removed), cutoff.isoformat())
    return removed
