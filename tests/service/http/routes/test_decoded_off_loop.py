"""Every body decoded on a thread (`inline_body_bytes=0`), or parsed in a worker process
(`process_body_bytes=0` too), gets the answer it gets inline, on both lanes, /v2 included: the
same arrays, the same refusals."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app

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
