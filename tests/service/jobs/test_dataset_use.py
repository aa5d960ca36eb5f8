"""A DELETE /datasets/{id} and a POST /train naming the same dataset never interleave: the job is
recorded only on a dataset that still exists, and a dataset goes only while no unfinished job
reads it. Each test pauses one request at its check, in the real store, and runs the other."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from core.datasets import DatasetInfo, DatasetStore
from core.jobs.records import utc_now
from core.repository import ModelRepository
from core.settings import Settings
from service.jobs.local.backend import LocalBackend
from service.jobs.schemas import TrainRequest
from service.jobs.submission import prepare
from service.jobs.sweeper import Sweeper
from tests.service.jobs.conftest import Deployment
from tests.service.jobs.helpers import AUTH, LONG, rows

PAUSE_S = 1.0
"""How long the paused request waits for the other one; it waits for good only if it is
blocked, which is what the fix does."""


class PausingStore(DatasetStore):
    """The deployment's own store, with one pause: the first `info` (a submission checking the
    dataset) or `delete` (a deletion past its in-use check) waits until resumed."""

    def __init__(self, root: Path, pause_in: str) -> None:
        super().__init__(root)
        self.pause_in = pause_in
        self.paused = threading.Event()
        self.resume = threading.Event()

    def _pause(self, where: str) -> None:
        if where == self.pause_in and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(10)

    def info(self, dataset: str) -> DatasetInfo:
        info = super().info(dataset)
        self._pause("info")
        return info

    def delete(self, dataset: str) -> DatasetInfo:
        self._pause("delete")
        return super().delete(dataset)


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(response=call()))
    thread.start()
    return thread, out


def upload(client: TestClient, seed: int) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows(n=40, d=4, seed=seed), dtype=np.float32))
    response = client.post(
        "/datasets", files={"file": ("rows.npy", buffer.getvalue())}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    return str(response.json()["dataset"])


def train_on(client: TestClient, dataset: str, name: str) -> Any:
    body = {"name": name, "data": {"dataset": dataset}, "config": LONG}
    return client.post("/train", json=body, headers=AUTH)


def assert_one_step(client: TestClient, dataset: str, deleted: Any, trained: Any) -> None:
    """Never both: a deleted dataset and a job recorded on it."""
    assert not (deleted.status_code == 200 and trained.status_code == 202), (
        f"the dataset was deleted and a job recorded on it: {trained.json()}"
    )
    if trained.status_code == 202:
        client.delete(f"/jobs/{trained.json()['job_id']}", headers=AUTH)


def test_a_submission_paused_after_its_check_is_not_recorded_on_a_deleted_dataset(
    client: TestClient, deployment: Deployment
):
    dataset = upload(client, seed=31)
    store = PausingStore(deployment.settings.datasets_path, pause_in="info")
    client.app.state.datasets = store  # type: ignore[attr-defined]
    try:
        training, trained = in_thread(lambda: train_on(client, dataset, "race-train-first"))
        assert store.paused.wait(10)
        deleting, deleted = in_thread(lambda: client.delete(f"/datasets/{dataset}", headers=AUTH))
        deleting.join(PAUSE_S)
        store.resume.set()
        training.join(30)
        deleting.join(30)
    finally:
        client.app.state.datasets = DatasetStore(deployment.settings.datasets_path)  # type: ignore[attr-defined]
    assert_one_step(client, dataset, deleted["response"], trained["response"])
    # The submission had not recorded its job yet: the deletion went first, the job is refused.
    assert deleted["response"].status_code == 200
    assert trained["response"].status_code == 409
    assert trained["response"].json()["detail"] == (
        f"dataset {dataset!r} was deleted while this job was being submitted; upload it again"
    )


def test_a_deletion_paused_after_its_check_keeps_a_job_from_being_recorded(
    client: TestClient, deployment: Deployment
):
    dataset = upload(client, seed=32)
    store = PausingStore(deployment.settings.datasets_path, pause_in="delete")
    client.app.state.datasets = store  # type: ignore[attr-defined]
    try:
        deleting, deleted = in_thread(lambda: client.delete(f"/datasets/{dataset}", headers=AUTH))
        assert store.paused.wait(10)
        training, trained = in_thread(lambda: train_on(client, dataset, "race-delete-first"))
        training.join(PAUSE_S)
        store.resume.set()
        deleting.join(30)
        training.join(30)
    finally:
        client.app.state.datasets = DatasetStore(deployment.settings.datasets_path)  # type: ignore[attr-defined]
    assert_one_step(client, dataset, deleted["response"], trained["response"])
    assert deleted["response"].status_code == 200
    assert trained["response"].status_code == 409


def test_a_dataset_a_job_uses_is_not_deleted(client: TestClient):
    dataset = upload(client, seed=33)
    response = train_on(client, dataset, "in-use")
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    refused = client.delete(f"/datasets/{dataset}", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"dataset {dataset!r} is in use by unfinished job(s) {job_id}; "
        "cancel them or wait until they end"
    )
    client.delete(f"/jobs/{job_id}", headers=AUTH)


# -- the retention sweep ------------------------------------------------------------------------


def test_the_sweep_removes_old_datasets_no_unfinished_job_uses(tmp_path: Path):
    settings = Settings(model_repository=tmp_path / "repository", dataset_retention_s=3600)
    backend = LocalBackend(settings)
    backend.store.initialise()  # no dispatcher: the job stays queued
    store = DatasetStore(settings.datasets_path)
    old, used, fresh = (store.add_array(np.asarray(rows(n=30, d=4, seed=s))) for s in (1, 2, 3))
    request = TrainRequest.model_validate(
        {"name": "uses", "data": {"dataset": used.dataset}, "config": {"epochs": 1}}
    )
    spec = prepare(request, store, ModelRepository(settings.model_repository))
    backend.submit(spec)
    two_hours_ago = time.time() - 7200
    for info in (old, used):
        os.utime(store.root / f"{info.dataset}.json", (two_hours_ago, two_hours_ago))

    Sweeper(backend, store, settings).sweep()

    assert {info.dataset for info in store.list()} == {used.dataset, fresh.dataset}
    assert not (store.root / f"{old.dataset}.npy").exists()


def test_without_dataset_retention_nothing_is_swept(tmp_path: Path):
    settings = Settings(model_repository=tmp_path / "repository")
    assert settings.dataset_retention_s is None
    backend = LocalBackend(settings)
    backend.store.initialise()
    store = DatasetStore(settings.datasets_path)
    info = store.add_array(np.asarray(rows(n=30, d=4)))
    long_ago = (utc_now() - timedelta(days=3650)).timestamp()
    os.utime(store.root / f"{info.dataset}.json", (long_ago, long_ago))
    Sweeper(backend, store, settings).sweep()
    assert [d.dataset for d in store.list()] == [info.dataset]
