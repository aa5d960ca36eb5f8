"""A JSON body of too many rows, sent in chunks, is refused on both lanes with the exact count,
once all of it has arrived (the connection stays usable), without being kept or parsed."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app


def _chunks(rows: int) -> Iterator[bytes]:
    yield b'{"vectors": ['
    for i in range(rows):
        yield (b"," if i else b"") + b"[0.1, 0.2, 0.3, 0.4]"
    yield b"]}"


def test_a_chunked_body_of_too_many_rows_is_a_422_with_the_exact_count(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings)) as client:
        refused = client.post("/score", content=_chunks(150))
        assert refused.status_code == 422
        assert refused.json() == {"detail": "batch has 150 rows; the limit is 100"}
        answered = client.post("/score", content=_chunks(100))
        assert answered.status_code == 200
        assert len(answered.json()["scores"]) == 100
