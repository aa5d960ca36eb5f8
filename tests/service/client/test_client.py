"""The blocking client against a real server: every route, JSON and .npy, and typed errors
that carry the status and the server's detail."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.manifest import Manifest
from service.client import (
    Client,
    Conflict,
    InvalidInput,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from tests.service.client.conftest import API_KEY, NAMES, Server
from tests.service.jobs.helpers import rows as training_rows
from tests.tiny_model import publish_tiny_model, reference_decode, reference_outputs, sample_vectors


@pytest.fixture
def client(server: Server) -> Client:
    with Client(server.url, api_key=API_KEY) as client:
        yield client


@pytest.fixture
def rows(server: Server) -> np.ndarray:
    return sample_vectors(server.repository.manifest("tiny", 1), 6)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "npy"])
def test_inference_matches_the_reference(
    client: Client, server: Server, rows: np.ndarray, binary: bool
) -> None:
    manifest = server.repository.manifest("tiny", 1)
    expected = reference_outputs(manifest, rows)
    scores = client.score(rows, explain=True, binary=binary)
    assert (scores.model.name, scores.model.version) == ("tiny", 1)
    assert_allclose(scores.scores, expected["scores"], rtol=1e-4, atol=1e-6)
    assert_allclose(scores.feature_errors, expected["feature_errors"], rtol=1e-4, atol=1e-6)
    assert scores.threshold == pytest.approx(manifest.threshold)
    assert scores.anomalies.tolist() == (expected["scores"] > manifest.threshold).tolist()
    assert scores.feature_names == ["x0", "x1", "x2", "x3"]
    codes = client.encode(rows, binary=binary)
    assert_allclose(codes.array, expected["codes"], rtol=1e-4, atol=1e-5)
    decoded = client.decode(codes.array, binary=binary)
    assert_allclose(decoded.array, reference_decode(manifest, codes.array), rtol=1e-4, atol=1e-4)
    rebuilt = client.reconstruct(rows, model="tiny", version=1, binary=binary)
    assert_allclose(rebuilt.array, expected["reconstructions"], rtol=1e-4, atol=1e-4)
    assert rebuilt.model.version == 1


@pytest.mark.parametrize("binary", [False, True], ids=["json", "npy"])
def test_top_features_by_name(
    client: Client, server: Server, rows: np.ndarray, binary: bool
) -> None:
    scores = client.score(rows, version=2, top=2, threshold=0.0, binary=binary)
    errors = reference_outputs(server.repository.manifest("tiny", 2), rows)["feature_errors"]
    worst = np.argsort(-errors, axis=1, kind="stable")[:, :2]
    assert scores.feature_errors is None and scores.feature_names == NAMES
    assert scores.top_indices.tolist() == worst.tolist()
    named = scores.top_features()
    assert [[f.feature for f in row] for row in named] == [[NAMES[j] for j in r] for r in worst]
    assert scores.anomalies.all()  # threshold 0


def test_a_large_batch_goes_as_npy_by_itself(client: Client, server: Server) -> None:
    rows = sample_vectors(server.repository.manifest("tiny", 1), 5000)  # 20,000 values
    scores = client.score(rows)
    expected = reference_outputs(server.repository.manifest("tiny", 1), rows)["scores"]
    assert_allclose(scores.scores, expected, rtol=1e-4, atol=1e-6)


def test_models_manifest_calibration_and_traffic(client: Client, server: Server) -> None:
    (tiny,) = [m for m in client.models() if m.name == "tiny"]
    assert tiny.active_version == 1
    assert [(v.version, v.latent_dim) for v in tiny.version_details][:2] == [(1, 2), (2, 2)]
    assert tiny.version_details[1].feature_names == NAMES
    assert client.model("tiny") == tiny
    manifest = client.manifest("tiny", 2)
    assert isinstance(manifest, Manifest) and manifest == server.repository.manifest("tiny", 2)
    histogram = client.calibration("tiny", 1)
    assert histogram.n == server.repository.manifest("tiny", 1).calibration.n
    assert len(histogram.bin_edges) == len(histogram.counts) + 1
    assert client.traffic("tiny", 1).model.version == 1


def test_promote_and_delete(client: Client, server: Server) -> None:
    version = publish_tiny_model(server.repository, "other")
    spare = publish_tiny_model(server.repository, "other", seed=5, promote=False)
    assert client.promote("other", spare).active_version == spare
    client.delete_version("other", version)
    assert client.model("other").versions == [spare]
    with pytest.raises(Conflict) as caught:
        client.delete_version("other", spare)
    assert caught.value.status == 409
    assert (
        caught.value.detail
        == f"model 'other' v{spare} is the active version; promote another first"
    )


def test_health_readiness_and_metrics(client: Client) -> None:
    assert client.health() is True
    assert client.ready().status == "ready"
    assert "aeserve_" in client.metrics()


def test_errors_are_typed_and_carry_status_and_detail(
    client: Client, server: Server, rows: np.ndarray
) -> None:
    with pytest.raises(NotFound) as not_found:
        client.score(rows, model="missing")
    assert not_found.value.status == 404
    assert "missing" in not_found.value.detail
    with pytest.raises(InvalidInput) as invalid:
        client.score(rows[:, :3])
    assert invalid.value.status == 422
    assert invalid.value.detail == "vectors: row 0 has 3 values; model 'tiny' v1 expects 4"
    assert isinstance(invalid.value, ValueError)
    with Client(server.url) as anonymous, pytest.raises(Unauthorized) as unauthorized:
        anonymous.datasets()
    assert unauthorized.value.status == 401 and unauthorized.value.detail
    with pytest.raises(PayloadTooLarge) as too_large:
        client.score(np.zeros((300_000, 4), dtype=np.float32), binary=True)
    assert too_large.value.status == 413


def test_datasets(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "vitals.csv"
    data = np.asarray(training_rows(n=30, d=4), dtype=np.float32)
    path.write_text(",".join(NAMES) + "\n" + "\n".join(",".join(map(str, r)) for r in data))
    from_file = client.upload_dataset(path)
    assert (from_file.rows, from_file.dim, from_file.filename) == (30, 4, "vitals.csv")
    assert from_file.feature_names == NAMES and from_file.uploaded_at is not None
    from_array = client.upload_dataset(data * 2)
    assert from_array.filename == "rows.npy" and from_array.feature_names is None
    assert {d.dataset for d in client.datasets()} >= {from_file.dataset, from_array.dataset}
    assert client.dataset(from_file.dataset) == from_file
    assert client.delete_dataset(from_array.dataset).dataset == from_array.dataset
    with pytest.raises(NotFound):
        client.dataset(from_array.dataset)


def test_train_follow_and_jobs(client: Client, server: Server) -> None:
    data = training_rows(n=40, d=4)
    submitted = client.train("trained", data, config={"epochs": 3}, feature_names=NAMES)
    assert submitted.status == "queued"
    events = list(client.events(submitted.job_id))
    assert [e.event for e in events][-1] == "done"
    progress = [e for e in events if e.event == "progress"]
    assert [e.id for e in progress] == list(range(1, len(progress) + 1))
    record = client.wait(submitted.job_id)
    assert record.status == "succeeded" and record.result is not None
    assert server.repository.manifest("trained", 1).feature_names == NAMES
    # Resuming after the last epoch gives only `done`.
    resumed = list(client.events(submitted.job_id, last_event_id=len(progress)))
    assert [e.event for e in resumed] == ["done"]
    assert client.job(submitted.job_id) == record
    assert submitted.job_id in [job.job_id for job in client.jobs(limit=10)]
    with pytest.raises(Conflict) as finished:
        client.cancel_job(submitted.job_id)
    assert finished.value.status == 409


def test_train_from_a_dataset_and_a_failed_submit(client: Client) -> None:
    uploaded = client.upload_dataset(np.asarray(training_rows(n=40, d=4), dtype=np.float32))
    record = client.wait(
        client.train("from-dataset", uploaded.dataset, config={"epochs": 2}).job_id
    )
    assert record.result is not None and record.result.model.name == "from-dataset"
    with pytest.raises(InvalidInput) as invalid:
        client.train("few", np.ones((3, 4)), config={"epochs": 2})
    assert invalid.value.detail == "data has 3 rows; training needs at least 10"


def test_cancel_a_running_job(client: Client) -> None:
    data = training_rows(n=400, d=4)
    submitted = client.train(
        "cancelled", data, config={"epochs": 500, "early_stopping_patience": 500}
    )
    deadline = time.monotonic() + 60
    while client.job(submitted.job_id).status == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.cancel_job(submitted.job_id).job_id == submitted.job_id
    with pytest.raises(JobFailed) as failed:
        client.wait(submitted.job_id, timeout=60)
    assert failed.value.record.status == "cancelled"


def test_import_an_onnx_autoencoder(client: Client, tmp_path: Path) -> None:
    from tests.foreign_models import PlainAutoencoder, export, train_briefly

    data = np.asarray(training_rows(n=60, d=4), dtype=np.float32)
    model = train_briefly(PlainAutoencoder(4, 2), data, steps=20)
    path = export(model, tmp_path / "mine.onnx", 4, ["recon", "z"])
    submitted = client.import_model(path, "imported", data, codes="z")
    record = client.wait(submitted.job_id, timeout=120)
    assert record.kind == "import" and record.result is not None
    assert client.score(data[:3], model="imported").scores.shape == (3,)
