"""Which inference requests the fast lane takes itself, and which it leaves to FastAPI."""

from __future__ import annotations

import pytest

from service.http.fastlane import _Query, _read_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", _Query()),
        (b"model=tiny", _Query(model="tiny")),
        (b"model=tiny&version=2", _Query(model="tiny", version=2)),
        (b"threshold=0.5&explain=true", _Query(threshold=0.5, explain=True)),
        (b"threshold=-1e-3&explain=0", _Query(threshold=-0.001, explain=False)),
        (b"model=Bad%20Name", _Query(model="Bad Name")),  # the registry answers 404 for it
    ],
)
def test_well_formed_queries_are_read(query: bytes, expected: _Query) -> None:
    assert _read_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"version=0",
        b"version=x",
        b"version=-1",
        b"version=",
        b"model=",
        b"threshold=nan",
        b"threshold=inf",
        b"threshold=abc",
        b"explain=maybe",
        b"unknown=1",
    ],
)
def test_anything_else_is_left_to_fastapi(query: bytes) -> None:
    assert _read_query(query) is None
