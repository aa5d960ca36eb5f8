"""/v2 inference goes through the version's dynamic batcher: answers equal the unbatched runtime's,
concurrent requests are merged yet each gets its own rows, a bad request fails alone, and the
model configuration advertises `dynamic_batching` exactly when it is on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi import FastAPI
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose, assert_array_equal
from tritonclient.utils import InferenceServerException

from core.settings import Settings
from service.http.app import create_app
from service.inference.batching import DynamicBatcher
from service.inference.runtime import ModelRuntime
from tests.service.v2.conftest import serving
from tests.tiny_model import reference_outputs, sample_vectors

# Merged runs change only the batch dimension of each matrix product.
TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}
OUTPUTS = ["codes", "reconstructions", "scores", "feature_errors"]
CLIENTS = 16


class Runs:
    """Stands in for a batcher's run function: records each run's key and rows, and holds the
    first run until `hold_for` more requests are queued behind it, so they are merged."""

    def __init__(self, batcher: DynamicBatcher, hold_for: int = 0) -> None:
        self.batcher = batcher
        self.run = batcher._run
        self.hold_for = hold_for
        self.fail_on: float | None = None
        """A run holding a row of only this value fails, as a session run might."""
        self.calls: list[tuple[Hashable, np.ndarray]] = []

    def __call__(self, key: Hashable, rows: np.ndarray) -> Sequence[np.ndarray]:
        if not self.calls and self.hold_for:
            deadline = time.monotonic() + 10
            while len(self.batcher._queue) < self.hold_for and time.monotonic() < deadline:
                time.sleep(0.002)
        self.calls.append((key, rows.copy()))
        if self.fail_on is not None and (rows == self.fail_on).all(axis=1).any():
            raise ValueError("the session run failed")
        return self.run(key, rows)

    @property
    def sizes(self) -> list[int]:
        return [len(rows) for _, rows in self.calls]


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="module")
def address(app: FastAPI) -> Iterator[str]:
    with serving(app) as address:
        yield address


@pytest.fixture(scope="module")
def runtime(app: FastAPI, address: str) -> ModelRuntime:
    """The runtime that answers `tiny` (v1, the active version) in the served app."""
    runtime: ModelRuntime = app.state.registry.get("tiny")
    assert runtime.version == 1 and runtime.options.dynamic_batching
    return runtime


@pytest.fixture
def triton_client(address: str) -> Iterator[triton.InferenceServerClient]:
    """A client that sends up to `CLIENTS` requests at once (with `async_infer`)."""
    client = triton.InferenceServerClient(url=address, concurrency=CLIENTS)
    try:
        yield client
    finally:
        client.close()


def spy(monkeypatch: pytest.MonkeyPatch, runtime: ModelRuntime, hold_for: int = 0) -> Runs:
    runs = Runs(runtime._batcher, hold_for)
    monkeypatch.setattr(runtime._batcher, "_run", runs)
    return runs


def rows_input(name: str, rows: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def requested(names: list[str] | None) -> list[triton.InferRequestedOutput] | None:
    return None if names is None else [triton.InferRequestedOutput(name) for name in names]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    ("model", "graph", "input_name", "outputs"),
    [
        ("tiny", "autoencoder", "x", None),
        ("tiny", "autoencoder", "x", ["scores", "codes"]),
        ("tiny.decoder", "decoder", "codes", None),
    ],
    ids=["all-outputs", "some-outputs", "decoder"],
)
def test_infer_equals_the_unbatched_runtime(
    monkeypatch: pytest.MonkeyPatch,
    triton_client: triton.InferenceServerClient,
    runtime: ModelRuntime,
    model: str,
    graph: str,
    input_name: str,
    outputs: list[str] | None,
    binary: bool,
) -> None:
    x = sample_vectors(runtime.manifest, 6, seed=11)
    rows = x if input_name == "x" else asyncio.run(runtime.encode_async(x))
    expected = asyncio.run(runtime.infer_async(graph, {input_name: rows}, outputs or []))
    runs = spy(monkeypatch, runtime)
    result = triton_client.infer(
        model, [rows_input(input_name, rows, binary)], outputs=requested(outputs)
    )
    names = [output["name"] for output in result.get_response()["outputs"]]
    assert names == (outputs or list(expected))
    for name in names:
        assert_array_equal(result.as_numpy(name), expected[name])
    # It went through the batcher, which ran it alone, with the outputs in the model's order.
    assert len(runs.calls) == 1
    key, ran = runs.calls[0]
    assert key == (graph, tuple(n for n in OUTPUTS if n in names))
    assert_array_equal(ran, rows)


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(
    monkeypatch: pytest.MonkeyPatch,
    triton_client: triton.InferenceServerClient,
    runtime: ModelRuntime,
) -> None:
    runs = spy(monkeypatch, runtime, hold_for=CLIENTS - 1)
    batches = [sample_vectors(runtime.manifest, 1 + i % 3, seed=100 + i) for i in range(CLIENTS)]
    # The same outputs named in either order, or all of them: three batching keys.
    choices: list[list[str] | None] = [["scores", "codes"], ["codes", "scores"], None]
    asked = [choices[i % 3] for i in range(CLIENTS)]
    pending = [
        triton_client.async_infer(
            "tiny", [rows_input("x", x, binary=i % 2 == 0)], outputs=requested(names)
        )
        for i, (x, names) in enumerate(zip(batches, asked, strict=True))
    ]
    results = [request.get_result(timeout=60) for request in pending]
    # Before the reference runs below add theirs.
    sizes, calls, keys = runs.sizes, len(runs.calls), {key for key, _ in runs.calls}

    for x, names, result in zip(batches, asked, results, strict=True):
        expected = asyncio.run(runtime.infer_async("autoencoder", {"x": x}, names or []))
        assert [output["name"] for output in result.get_response()["outputs"]] == (names or OUTPUTS)
        for name in names or OUTPUTS:
            got = result.as_numpy(name)
            assert got.shape == expected[name].shape
            assert_allclose(got, expected[name], **TOLERANCE)
    # Every row ran exactly once, and requests were merged: fewer runs than requests.
    assert sum(sizes) == sum(len(x) for x in batches)
    assert calls < CLIENTS
    assert max(sizes) > 3
    assert keys == {
        ("autoencoder", ("codes", "scores")),
        ("autoencoder", tuple(OUTPUTS)),
    }


def test_a_bad_request_fails_alone(
    monkeypatch: pytest.MonkeyPatch,
    triton_client: triton.InferenceServerClient,
    runtime: ModelRuntime,
) -> None:
    batches = [sample_vectors(runtime.manifest, 2, seed=200 + i) for i in range(CLIENTS)]
    batches[3] = batches[3].copy()
    batches[3][1, 2] = np.nan  # refused by the runtime's checks: never queued
    batches[8] = np.full((1, runtime.input_dim), 7.0, dtype=np.float32)  # fails in the run
    runs = spy(monkeypatch, runtime, hold_for=CLIENTS - 2)
    runs.fail_on = 7.0
    pending = [
        triton_client.async_infer("tiny", [rows_input("x", x)], outputs=requested(["scores"]))
        for x in batches
    ]
    answers: list[Any] = []
    for request in pending:
        try:
            answers.append(request.get_result(timeout=60))
        except InferenceServerException as exc:
            answers.append(exc)

    refused, failed = answers[3], answers[8]
    assert isinstance(refused, InferenceServerException)
    assert refused.status() == "400"
    assert refused.message() == "row 1, column 2 is NaN; values must be finite numbers"
    assert isinstance(failed, InferenceServerException)
    assert failed.status() == "500"
    ran = list(runs.calls)  # before the reference runs below add theirs
    for i, (x, answer) in enumerate(zip(batches, answers, strict=True)):
        if i in (3, 8):
            continue
        expected = asyncio.run(runtime.infer_async("autoencoder", {"x": x}, ["scores"]))["scores"]
        assert_allclose(answer.as_numpy("scores"), expected, **TOLERANCE)
    # The NaN rows never reached a run; the failing one was merged, then retried alone.
    assert all(np.isfinite(rows).all() for _, rows in ran)
    with_failing = [len(rows) for _, rows in ran if (rows == 7.0).all(axis=1).any()]
    assert with_failing[0] > 1 and with_failing[-1] == 1


def json_body(x: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({}, {"preferred_batch_size": [100], "max_queue_delay_microseconds": 0}),
        (
            {"max_batch_rows": 32, "max_queue_delay_us": 500},
            {"preferred_batch_size": [32], "max_queue_delay_microseconds": 500},
        ),
        ({"dynamic_batching": False}, None),
    ],
    ids=["default", "configured", "off"],
)
def test_config_advertises_dynamic_batching_when_on(
    settings: Settings, update: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    changed = settings.model_copy(update=update)
    with TestClient(create_app(changed)) as client:
        for path in ("/v2/models/tiny/config", "/v2/models/tiny.decoder/versions/2/config"):
            config = client.get(path).json()
            assert config["max_batch_size"] == changed.max_batch == 100
            assert config.get("dynamic_batching") == expected
        # Inference answers the same either way.
        x = sample_vectors(client.app.state.registry.get("tiny").manifest, 3, seed=5)
        response = client.post("/v2/models/tiny/infer", json=json_body(x))
        assert response.status_code == 200
        scores = next(o for o in response.json()["outputs"] if o["name"] == "scores")
        runtime = client.app.state.registry.get("tiny")
        reference = reference_outputs(runtime.manifest, x)
        assert_allclose(scores["data"], reference["scores"], **TOLERANCE)
