"""The job contract, run against both backends: what a client of /train and /jobs can rely on."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.jobs.records import STATUSES
from tests.service.jobs.conftest import Deployment
from tests.service.jobs.helpers import (
    AUTH,
    LONG,
    max_overlap,
    rows,
    submit,
    wait_for,
    wait_for_epoch,
)

pytestmark = pytest.mark.slow


def test_inline_job_publishes_a_version_that_answers_score(
    client: TestClient, deployment: Deployment
):
    data = rows(seed=1)
    response = client.post(
        "/train",
        json={"name": "inline", "data": {"vectors": data}, "config": {"epochs": 4}},
        headers=AUTH,
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.json() == {"job_id": job_id, "status": "queued"}
    assert response.headers["location"] == f"/jobs/{job_id}"

    record = wait_for(client, job_id)
    assert record["status"] == "succeeded", record
    assert record["error"] is None
    assert record["result"]["model"] == {"name": "inline", "version": 1}
    assert record["result"]["promoted"] is True
    assert record["started_at"] >= record["created_at"]
    assert record["finished_at"] >= record["started_at"]
    assert [e["epoch"] for e in record["history"]] == [1, 2, 3, 4]
    assert record["progress"] == {"epochs": 4, **record["history"][-1]}
    manifest = deployment.repository.manifest("inline", 1)
    assert [e.model_dump() for e in manifest.training.history] == record["history"]

    score = client.post("/score?model=inline", json={"vectors": data[:3]})
    assert score.status_code == 200, score.text
    assert score.json()["model"] == {"name": "inline", "version": 1}
    assert len(score.json()["scores"]) == 3

    # A second job does not promote unless asked: version 1 stays the one served.
    second = wait_for(client, submit(client, "inline", rows(seed=2), epochs=2))
    assert second["result"]["model"] == {"name": "inline", "version": 2}
    assert second["result"]["promoted"] is False
    assert deployment.repository.active_version("inline") == 1

    # A third one asks: every server process answers with it within the reload interval.
    body = {"name": "inline", "data": {"vectors": rows(seed=2)}, "config": {"epochs": 2}}
    promoting = client.post("/train", json={**body, "promote": True}, headers=AUTH)
    third = wait_for(client, promoting.json()["job_id"])
    assert third["result"]["model"] == {"name": "inline", "version": 3}
    assert third["result"]["promoted"] is True
    deadline = time.monotonic() + 10
    while client.post("/score?model=inline", json={"vectors": data[:1]}).json()["model"] != {
        "name": "inline",
        "version": 3,
    }:
        assert time.monotonic() < deadline, "version 3 was never served"
        time.sleep(0.1)

    time.sleep(1.1)  # the job counts are read at most once a second
    gauge = {
        line.split()[0]: float(line.split()[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("aeserve_jobs{")
    }
    assert gauge['aeserve_jobs{status="succeeded"}'] >= 3
    assert set(gauge) == {f'aeserve_jobs{{status="{s}"}}' for s in STATUSES}


def test_job_on_an_uploaded_dataset(client: TestClient, deployment: Deployment):
    array = np.asarray(rows(n=80, d=5, seed=3), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array)
    upload = client.post(
        "/datasets", files={"file": ("train.npy", buffer.getvalue())}, headers=AUTH
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()["dataset"]
    assert upload.json()["rows"] == 80
    assert upload.json()["dim"] == 5

    response = client.post(
        "/train",
        json={"name": "by-dataset", "data": {"dataset": dataset}, "config": {"epochs": 3}},
        headers=AUTH,
    )
    assert response.status_code == 202, response.text
    record = wait_for(client, response.json()["job_id"])
    assert record["status"] == "succeeded", record
    assert record["dataset"] == dataset
    assert deployment.repository.manifest("by-dataset", 1).input_dim == 5


def test_a_dataset_in_use_is_not_deleted_until_its_job_ends(
    client: TestClient, deployment: Deployment
):
    array = np.asarray(rows(n=400, d=5, seed=6), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array)
    upload = client.post(
        "/datasets", files={"file": ("in-use.npy", buffer.getvalue())}, headers=AUTH
    )
    dataset = upload.json()["dataset"]
    body = {"name": "in-use", "data": {"dataset": dataset}, "config": LONG}
    job_id = client.post("/train", json=body, headers=AUTH).json()["job_id"]

    refused = client.delete(f"/datasets/{dataset}", headers=AUTH)
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "detail": f"dataset {dataset!r} is in use by unfinished job(s) {job_id}; "
        "cancel them or wait until they end"
    }
    assert client.get(f"/datasets/{dataset}", headers=AUTH).status_code == 200

    assert client.delete(f"/jobs/{job_id}", headers=AUTH).json()["status"] == "cancelled"
    deleted = client.delete(f"/datasets/{dataset}", headers=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert client.get(f"/datasets/{dataset}", headers=AUTH).status_code == 404


def test_cancelling_a_running_job_publishes_nothing(client: TestClient, deployment: Deployment):
    job_id = submit(client, "cancel-running", rows(n=400, seed=4), **LONG)
    assert wait_for_epoch(client, job_id, 2)["status"] == "running"

    response = client.delete(f"/jobs/{job_id}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    time.sleep(1.0)  # long enough for a job that was not really stopped to publish
    assert client.get(f"/jobs/{job_id}", headers=AUTH).json()["status"] == "cancelled"
    assert "cancel-running" not in deployment.repository.names()

    again = client.delete(f"/jobs/{job_id}", headers=AUTH)
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"job '{job_id}' has already finished (cancelled); "
        "only queued or running jobs can be cancelled"
    }


def test_cancelling_a_queued_job(client: TestClient, deployment: Deployment):
    busy = [submit(client, "cancel-busy", rows(n=400, seed=5), **LONG) for _ in range(2)]
    for job_id in busy:
        wait_for_epoch(client, job_id, 1)
    queued = submit(client, "cancel-queued", rows(seed=5), epochs=2)
    assert client.get(f"/jobs/{queued}", headers=AUTH).json()["status"] == "queued"

    response = client.delete(f"/jobs/{queued}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["started_at"] is None
    for job_id in busy:
        assert client.delete(f"/jobs/{job_id}", headers=AUTH).json()["status"] == "cancelled"
    time.sleep(1.0)
    assert client.get(f"/jobs/{queued}", headers=AUTH).json()["status"] == "cancelled"
    assert not {"cancel-busy", "cancel-queued"} & set(deployment.repository.names())


def test_a_job_that_fails_says_why(client: TestClient, deployment: Deployment):
    # Standard scaling makes negative inputs, which BCE cannot take; known only once it scales.
    job_id = submit(client, "fails", rows(seed=6), loss="bce", scaling="standard", epochs=2)
    record = wait_for(client, job_id)
    assert record["status"] == "failed"
    assert record["result"] is None
    assert record["error"].startswith("loss 'bce' needs inputs in [0, 1] after scaling;")
    assert record["error"].endswith("use scaling 'minmax' or loss 'mse'")
    assert "fails" not in deployment.repository.names()


def test_ten_jobs_all_finish_with_bounded_concurrency(client: TestClient, deployment: Deployment):
    data = rows(n=40, d=4, seed=7)
    job_ids = [submit(client, "ten", data, epochs=3) for _ in range(10)]
    records = [wait_for(client, job_id, timeout=120) for job_id in job_ids]

    assert [r["status"] for r in records] == ["succeeded"] * 10
    # Each job ran exactly once: ten jobs, ten distinct versions.
    assert sorted(r["result"]["model"]["version"] for r in records) == list(range(1, 11))
    assert deployment.repository.versions("ten") == list(range(1, 11))
    assert max_overlap(records) <= deployment.settings.max_concurrent_jobs

    listed = [job["job_id"] for job in client.get("/jobs", headers=AUTH).json()["jobs"]]
    assert [i for i in listed if i in job_ids] == job_ids[::-1]  # newest first


def test_events_stream_one_progress_event_per_epoch_then_the_final_record(client: TestClient):
    job_id = submit(client, "events", rows(seed=8), epochs=5, early_stopping_patience=0)
    response = client.get(f"/jobs/{job_id}/events", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")

    events = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    names = [name for name, _ in events]
    assert names == ["progress"] * 5 + ["done"]
    assert [data["epoch"] for _, data in events[:5]] == [1, 2, 3, 4, 5]
    assert all(data["epochs"] == 5 for _, data in events[:5])
    final = events[-1][1]
    assert final == client.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert final["status"] == "succeeded"
    assert [
        {k: data[k] for k in ("epoch", "train_loss", "val_loss")} for _, data in events[:5]
    ] == final["history"]

    # Reconnecting with the id of the last event received resumes after it, as EventSource does.
    resumed = client.get(f"/jobs/{job_id}/events", headers={**AUTH, "Last-Event-ID": "3"})
    blocks = [dict(line.split(": ", 1) for line in block.splitlines()) for block in
              resumed.text.strip().split("\n\n")]  # fmt: skip
    assert [(b["event"], b.get("id")) for b in blocks] == [
        ("progress", "4"),
        ("progress", "5"),
        ("done", None),
    ]
    after_all = client.get(f"/jobs/{job_id}/events", headers={**AUTH, "Last-Event-ID": "5"})
    assert after_all.text.startswith("event: done\n")

    bad = client.get(f"/jobs/{job_id}/events", headers={**AUTH, "Last-Event-ID": "three"})
    assert bad.status_code == 422
    assert "Last-Event-ID" in bad.json()["detail"]


def test_unknown_jobs_are_404(client: TestClient):
    detail = {"detail": "job 'nope' does not exist"}
    assert client.get("/jobs/nope", headers=AUTH).json() == detail
    assert client.get("/jobs/nope", headers=AUTH).status_code == 404
    assert client.get("/jobs/nope/events", headers=AUTH).status_code == 404
    response = client.delete("/jobs/nope", headers=AUTH)
    assert (response.status_code, response.json()) == (404, detail)
