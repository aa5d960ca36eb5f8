"""POST /import: a foreign autoencoder imported by a job and served; every file that cannot be
served as an autoencoder is a 4xx at submit time, before any job exists."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose
from onnx import TensorProto, helper

from core.settings import Settings
from service.http.app import create_app
from tests import foreign_models as foreign
from tests.service.jobs.helpers import API_KEY, AUTH, wait_for

D, K = 6, 2


def normal_rows(n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 2)) @ rng.normal(size=(2, D))
    return (signal + 0.1 * rng.normal(size=(n, D))).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("import")
    return Settings(
        model_repository=root / "repository",
        api_key=API_KEY,
        reload_interval_s=0.2,
        max_import_bytes=200_000,
        max_body_bytes=2_000_000,
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    module = foreign.train_briefly(foreign.PlainAutoencoder(D, K), normal_rows())
    path = tmp_path_factory.mktemp("foreign") / "ae.onnx"
    return foreign.export(module, path, D, ["recon", "z"]), module


def post_import(
    client: TestClient, model: bytes, name: str, calibration: bytes | None = None, **form: Any
) -> Any:
    files: dict[str, Any] = {"file": ("ae.onnx", model)}
    if calibration is not None:
        files["calibration"] = ("normal.npy", calibration)
    data = {
        "name": name,
        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()},
    }
    return client.post("/import", files=files, data=data, headers=AUTH)


def served(client: TestClient, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.post(f"/score?model={name}", json={"vectors": [[0.0] * D]}).status_code != 200:
        assert time.monotonic() < deadline, f"model {name!r} never served"
        time.sleep(0.1)


def test_an_onnx_autoencoder_imported_over_http_is_served(
    client: TestClient, foreign_onnx: tuple[Path, Any]
) -> None:
    path, _ = foreign_onnx
    rows = normal_rows()
    response = post_import(client, path.read_bytes(), "web", npy(rows), codes="z", promote=True)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['job_id']}"
    record = wait_for(client, response.json()["job_id"])
    assert record["status"] == "succeeded", record
    assert record["kind"] == "import"
    assert record["result"]["model"] == {"name": "web", "version": 1}
    assert record["result"]["epochs_run"] is None
    served(client, "web")

    new = normal_rows(8, seed=5)
    own = foreign.run(path, new)
    body = client.post("/score?model=web", json={"vectors": new.tolist(), "explain": True}).json()
    errors = (new - own["recon"]) ** 2
    assert_allclose(body["scores"], errors.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert_allclose(body["feature_errors"], errors, rtol=1e-5, atol=1e-6)
    calibration = ((rows - foreign.run(path, rows)["recon"]) ** 2).mean(axis=1)
    assert_allclose(body["threshold"], np.quantile(np.sort(calibration), 0.99), rtol=1e-5)
    codes = client.post("/encode?model=web", json={"vectors": new.tolist()}).json()["codes"]
    assert_allclose(codes, own["z"], rtol=1e-5, atol=1e-6)
    manifest = client.get("/models/web/versions/1", headers=AUTH).json()
    assert manifest["source"] == "imported"
    assert manifest["imported"]["codes"] == "z"


def test_calibration_by_dataset_id_and_a_graph_without_codes(
    client: TestClient, foreign_onnx: tuple[Path, Any]
) -> None:
    path, _ = foreign_onnx
    uploaded = client.post(
        "/datasets", files={"file": ("normal.npy", npy(normal_rows()))}, headers=AUTH
    ).json()
    response = post_import(
        client, path.read_bytes(), "nocodes", dataset=uploaded["dataset"], reconstructions="recon"
    )
    assert response.status_code == 202, response.text
    assert wait_for(client, response.json()["job_id"])["status"] == "succeeded"
    served(client, "nocodes")
    answer = client.post("/encode?model=nocodes", json={"vectors": [[0.0] * D]})
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(
        "model 'nocodes' v1 has no encoder: it was imported from a graph without a code output"
    )
    assert client.post("/decode?model=nocodes", json={"codes": [[0.0, 0.0]]}).status_code == 409
    assert (
        client.post("/reconstruct?model=nocodes", json={"vectors": [[0.0] * D]}).status_code == 200
    )
    v2 = client.post(
        "/v2/models/nocodes/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, D], "data": [0.0] * D}]},
    ).json()
    assert [o["name"] for o in v2["outputs"]] == ["reconstructions", "scores", "feature_errors"]


def _two_inputs(path: Path) -> Path:
    return foreign.crafted(
        path,
        [("a", TensorProto.FLOAT, ["n", D]), ("b", TensorProto.FLOAT, ["n", D])],
        [("y", TensorProto.FLOAT, ["n", D])],
        [helper.make_node("Add", ["a", "b"], ["y"])],
    )


def _integers(path: Path) -> Path:
    return foreign.crafted(
        path,
        [("x", TensorProto.INT64, ["n", D])],
        [("y", TensorProto.INT64, ["n", D])],
        [helper.make_node("Identity", ["x"], ["y"])],
    )


def _rank_three(path: Path) -> Path:
    return foreign.crafted(
        path,
        [("x", TensorProto.FLOAT, ["n", 2, 3])],
        [("y", TensorProto.FLOAT, ["n", 2, 3])],
        [helper.make_node("Identity", ["x"], ["y"])],
    )


def _future_opset(path: Path) -> Path:
    return foreign.crafted(
        path,
        [("x", TensorProto.FLOAT, ["n", D])],
        [("y", TensorProto.FLOAT, ["n", D])],
        [helper.make_node("Identity", ["x"], ["y"])],
        opset=999,
    )


def _unknown_operator(path: Path) -> Path:
    return foreign.crafted(
        path,
        [("x", TensorProto.FLOAT, ["n", D])],
        [("y", TensorProto.FLOAT, ["n", D])],
        [helper.make_node("NoSuchOperator", ["x"], ["y"])],
    )


def _zip_not_torchscript(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/data.pkl", b"not a module")
    return path


@pytest.mark.parametrize(
    ("make", "form", "status", "message"),
    [
        (
            lambda p: foreign.linear(p, D, D - 1),
            {},
            422,
            "model: output 'y' has 5 values a row, its input 6: an autoencoder's reconstruction is as wide as its input",
        ),
        (
            lambda p: foreign.linear(p, D, batch=32),
            {},
            422,
            "model: input 'x' has shape [32, 6]: its batch axis is fixed to 32 rows",
        ),
        (
            lambda p: foreign.linear(p, D + 2),
            {},
            422,
            "model: input 'x' takes rows of 8 values; the calibration rows have 6",
        ),
        (
            _two_inputs,
            {},
            422,
            "model: the graph takes 2 inputs ('a', 'b'); an autoencoder takes one [n, d] tensor",
        ),
        (_integers, {}, 422, "model: input 'x' is tensor(int64); aeserve feeds and reads float32"),
        (
            _rank_three,
            {},
            422,
            "model: input 'x' has shape [n, 2, 3]; an autoencoder's tensors are [n, d]",
        ),
        (_future_opset, {}, 422, "model: onnxruntime"),
        (_unknown_operator, {}, 422, "model: onnxruntime"),
        (lambda p: p.write_bytes(b"\x0a\xff\xff\xff\xff garbage"), {}, 422, "model: onnxruntime"),
        (lambda p: p.write_bytes(b""), {}, 422, "model: 'ae.onnx' is empty"),
        (
            lambda p: p.write_bytes(b"\x00" * 300_000),
            {},
            413,
            "model: 'ae.onnx' is larger than 200000 bytes (AESERVE_MAX_IMPORT_BYTES)",
        ),
        (_zip_not_torchscript, {}, 422, "is a zip archive but not a TorchScript module"),
        # Weights "stored" in files of the server: the model's own folder holds nothing else.
        (lambda p: foreign.external_weights(p, "weights.bin"), {}, 422, "External data path"),
        (lambda p: foreign.external_weights(p, "../.models/x.bin"), {}, 422, "External data path"),
        (lambda p: foreign.external_weights(p, "/etc/passwd"), {}, 422, "External data path"),
        (
            lambda p: foreign.linear(p, D),
            {"codes": "z"},
            422,
            "codes: the graph has no output 'z'; its outputs are 'y'",
        ),
        (
            lambda p: foreign.linear(p, D),
            {"loss": "bce", "scaling": "standard"},
            422,
            "scaling: bce needs rows in [0, 1]",
        ),
        (
            lambda p: foreign.linear(p, D),
            {"name": "Not A Name"},
            422,
            "model name 'Not A Name' is invalid",
        ),
        (lambda p: foreign.linear(p, D), {"threshold_quantile": 1.5}, 422, "threshold_quantile"),
        (lambda p: foreign.linear(p, D), {"loss": "l1"}, 422, "loss"),
    ],
)
def test_what_cannot_be_served_is_refused_at_submit_time(
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Any,
    form: dict[str, Any],
    status: int,
    message: str,
) -> None:
    # A file the server could read as weights, where a graph given as bytes would find it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(bytes(1024))
    path = tmp_path / "ae.onnx"
    make(path)
    before = len(client.get("/jobs", headers=AUTH).json()["jobs"])
    name = form.pop("name", "refused")
    response = post_import(client, path.read_bytes(), name, npy(normal_rows()), **form)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert len(client.get("/jobs", headers=AUTH).json()["jobs"]) == before


def test_calibration_rows_are_checked_at_submit_time(client: TestClient, tmp_path: Path) -> None:
    model = foreign.linear(tmp_path / "ae.onnx", D).read_bytes()
    neither = post_import(client, model, "cal")
    assert (neither.status_code, neither.json()["detail"]) == (
        422,
        "give exactly one of 'calibration' (a file of rows) or 'dataset'",
    )
    few = post_import(client, model, "cal", npy(normal_rows(3)))
    assert few.status_code == 422 and "rows" in few.json()["detail"]
    unknown = post_import(client, model, "cal", dataset="0" * 32)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("dataset: ")
    outside = post_import(client, model, "cal", npy(normal_rows() + 5), loss="bce")
    assert outside.status_code == 422 and "[0, 1]" in outside.json()["detail"]


def test_import_needs_the_key(client: TestClient, tmp_path: Path) -> None:
    model = foreign.linear(tmp_path / "ae.onnx", D).read_bytes()
    response = client.post("/import", files={"file": ("ae.onnx", model)}, data={"name": "x"})
    assert response.status_code == 401


CHECK = """
import io, sys, tempfile, time
import numpy as np
from fastapi.testclient import TestClient
from service.http.app import create_app
from core.settings import Settings
settings = Settings(model_repository=tempfile.mkdtemp())
rows = io.BytesIO(); np.save(rows, np.random.default_rng(0).normal(size=(40, 6)).astype("float32"))
model = open(sys.argv[1], "rb").read()
with TestClient(create_app(settings)) as client:
    files = {"file": ("ae.pt", model), "calibration": ("rows.npy", rows.getvalue())}
    data = {"name": "scripted", "codes": "output_1", "reconstructions": "output_0"}
    response = client.post("/import", files=files, data=data)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 90
    while (record := client.get(response.headers["location"]).json())["status"] != "succeeded":
        assert record["status"] in ("queued", "running") and time.monotonic() < deadline, record
        time.sleep(0.1)
print(sorted(m for m in sys.modules if m in ("torch", "onnx") or m.split(".")[0] == "models"))
"""


def test_a_torchscript_module_is_imported_without_torch_in_the_api_process(tmp_path: Path) -> None:
    module = foreign.train_briefly(foreign.PlainAutoencoder(D, K), normal_rows())
    path = foreign.script(module, tmp_path / "ae.pt")
    # A fresh interpreter: this one has torch loaded by the test itself.
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
