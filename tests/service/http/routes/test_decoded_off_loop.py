"""Every body decoded on a thread (`inline_body_bytes=0`), or parsed in a worker process
(`process_body_bytes=0` too), gets the answer it gets inline, on both lanes, /v2 included: the
same arrays, the same refusals."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http import bodies
from service.http.app import create_app
from service.v2 import wire

ROWS = np.random.default_rng(3).normal(size=(5, 4)).round(3).tolist()
REQUESTS = [
    ("/score", {"vectors": ROWS}),
    ("/score", {"vectors": ROWS[0], "explain": True}),
    ("/encode", {"vectors": ROWS}),
    ("/score", {"vectors": [*ROWS, [1.0]]}),  # ragged
    ("/score", {"vectors": [ROWS[0]] * 101}),  # over max_batch
    ("/score", {"vectors": ROWS, "vectors ": 1}),  # unknown field
    (
        "/v2/models/tiny/infer",
        {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP32", "data": ROWS}]},
    ),
    (
        "/v2/models/tiny/infer",
        {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP64", "data": ROWS}]},
    ),
]


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def clients(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    threaded = settings.model_copy(update={"inline_body_bytes": 0})
    with _client(settings) as inline, _client(threaded) as off_loop:
        yield inline, off_loop


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_a_body_decoded_on_a_thread_gets_the_same_answer(
    clients: tuple[TestClient, TestClient], path: str, body: dict[str, object]
) -> None:
    inline, off_loop = (c.post(path, json=body) for c in clients)
    assert off_loop.status_code == inline.status_code
    assert off_loop.json() == inline.json()


@pytest.fixture
def in_process(settings: Settings) -> Iterator[TestClient]:
    update = {"inline_body_bytes": 0, "process_body_bytes": 0, "decode_processes": 1}
    with _client(settings.model_copy(update=update)) as client:
        yield client


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_a_body_parsed_in_a_worker_process_gets_the_same_answer(
    clients: tuple[TestClient, TestClient],
    in_process: TestClient,
    path: str,
    body: dict[str, object],
) -> None:
    inline = clients[0].post(path, json=body)
    answer = in_process.post(path, json=body)
    assert answer.status_code == inline.status_code
    assert answer.json() == inline.json()


def test_a_compressed_v2_body_is_decoded_on_a_thread(
    clients: tuple[TestClient, TestClient],
) -> None:
    _, off_loop = clients
    body = gzip.compress(json.dumps(REQUESTS[-2][1]).encode())
    answer = off_loop.post(
        "/v2/models/tiny/infer", content=body, headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["shape"][0] == 5


def _on_the_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_npy_and_v2_binary_bodies_are_decoded_on_the_loop_however_large(
    clients: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their decoding views the body rather than parsing it, so a thread hop would cost more
    than it saves; the JSON header of a v2 body is what counts towards the inline size."""
    _, off_loop = clients  # inline_body_bytes=0: any other body is decoded on a thread
    seen: list[tuple[str, bool]] = []

    def recorded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            seen.append((name, _on_the_loop()))
            return function(*args)

        return call

    monkeypatch.setattr(bodies, "decode_npy", recorded("npy", bodies.decode_npy))
    monkeypatch.setattr(wire, "split", recorded("v2", wire.split))
    rows = np.asarray(ROWS, dtype=np.float32)
    npy = io.BytesIO()
    np.save(npy, rows)
    answer = off_loop.post(
        "/score", content=npy.getvalue(), headers={"Content-Type": "application/x-npy"}
    )
    assert answer.status_code == 200
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [5, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ]
        }
    ).encode()
    answer = off_loop.post(
        "/v2/models/tiny/infer",
        content=header + rows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code == 200
    assert seen == [("npy", True), ("v2", False)]  # a JSON header of any size: on a thread
    seen.clear()
    raw = off_loop.post(
        "/v2/models/tiny/infer",
        content=rows.tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert raw.status_code == 200
    assert seen == [("v2", True)]
