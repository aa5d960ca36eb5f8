"""Which inference requests the fast lane takes itself, which it leaves to FastAPI, and that
middleware applies to both."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from service.http.fastlane import LANE_FAST, LANE_FASTAPI, InferenceFastLane, _Query, _read_query
from tests.tiny_model import publish_tiny_model


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


# -- the lane inside the middleware stack ---------------------------------------------------------


class _Recorder:
    """A middleware added after the app is built, as CORS or tracing would be."""

    def __init__(self, app: ASGIApp, seen: list[tuple[str, str | None]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.seen.append((scope["path"], scope.get("state", {}).get("lane")))


def _app_with_recorder(
    tmp_path: Path, fast_lane: bool
) -> tuple[FastAPI, list[tuple[str, str | None]]]:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    settings = Settings(
        model_repository=repository.root, default_model="tiny", inference_fast_lane=fast_lane
    )
    app = create_app(settings)
    seen: list[tuple[str, str | None]] = []
    app.add_middleware(_Recorder, seen=seen)
    return app, seen


@pytest.mark.parametrize("path", ["/encode", "/reconstruct", "/score"])
def test_inference_requests_take_the_lane_through_middleware_added_later(
    tmp_path: Path, path: str
) -> None:
    app, seen = _app_with_recorder(tmp_path, fast_lane=True)
    with TestClient(app) as client:
        response = client.post(path, json={"vectors": [[0.1, 0.2, 0.3, 0.4]]})
        assert response.status_code == 200
        assert client.post(f"{path}?unknown=1", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]})
    assert seen == [(path, LANE_FAST), (path, LANE_FASTAPI)]


def test_with_the_lane_off_every_request_takes_the_routes(tmp_path: Path) -> None:
    app, seen = _app_with_recorder(tmp_path, fast_lane=False)
    with TestClient(app) as client:
        assert client.post("/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).status_code == 200
    assert seen == [("/score", None)]


def test_the_lane_is_the_innermost_middleware(tmp_path: Path) -> None:
    """Middleware that create_app adds after the lane wraps it; one added before it would sit
    between the lane and the router, and the lane's requests would bypass it."""
    app, _ = _app_with_recorder(tmp_path, fast_lane=True)
    assert app.user_middleware[-1].cls is InferenceFastLane
    assert sum(m.cls is InferenceFastLane for m in app.user_middleware) == 1
