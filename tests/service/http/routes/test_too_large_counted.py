"""A body over the limit is counted in /metrics as the 413 it gets, on both lanes: one refused
from its Content-Length was not counted at all, one refused as its bytes were counted (chunked)
was counted as a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi.testclient import TestClient

ROWS = b"[0.1, 0.2, 0.3, 0.4]," * 12_000  # 252,000 bytes, over the fixture's 200,000


def _chunked() -> Iterator[bytes]:
    yield b'{"vectors": ['
    for start in range(0, len(ROWS), 16_384):
        yield ROWS[start : start + 16_384]
    yield b"[0.1, 0.2, 0.3, 0.4]]}"


def test_a_413_is_counted_as_one(client: TestClient) -> None:
    body = b'{"vectors": [' + ROWS + b"[0.1, 0.2, 0.3, 0.4]]}"
    headers = {"Content-Type": "application/json"}
    assert client.post("/score", content=body, headers=headers).status_code == 413
    assert client.post("/score", content=_chunked(), headers=headers).status_code == 413
    text = client.get("/metrics").text
    counted: dict[str, float] = {}
    for status, value in re.findall(
        r'^aeserve_requests_total\{[^}]*method="POST"[^}]*status="(\d+)"[^}]*\} (\S+)',
        text,
        re.MULTILINE,
    ):
        counted[status] = counted.get(status, 0.0) + float(value)
    assert counted == {"413": 2.0}
