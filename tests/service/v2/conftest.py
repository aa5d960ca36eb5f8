"""Fixtures for the protocol: model `tiny` with two versions, served for real by uvicorn on a
loopback port (tritonclient speaks HTTP to a socket), plus a TestClient on the same settings for
bodies no client library would send."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.manifest import Manifest
from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.tiny_model import publish_tiny_model


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """`tiny` v1 (active) and v2 (another seed, reached only by pinning the version)."""
    repository = ModelRepository(tmp_path_factory.mktemp("v2") / "repository")
    publish_tiny_model(repository, "tiny", seed=0, promote=True)
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    return repository


@pytest.fixture(scope="module")
def manifests(repository: ModelRepository) -> dict[int, Manifest]:
    return {version: repository.manifest("tiny", version) for version in (1, 2)}


@pytest.fixture(scope="module")
def settings(repository: ModelRepository) -> Settings:
    return Settings(
        model_repository=repository.root,
        default_model="tiny",
        max_batch=100,
        max_body_bytes=200_000,
    )


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`host:port` of `app` served by uvicorn in a thread, on a port the OS picks."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, name="uvicorn-v2-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)
    host, port = served.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"{host}:{port}"
    finally:
        served.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    """`host:port` of the app served by uvicorn in a thread, on a port the OS picks."""
    with serving(create_app(settings)) as address:
        yield address


@pytest.fixture(scope="module")
def triton_client(server: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def rest(server: str) -> Iterator[httpx.Client]:
    """The same server's own routes (/encode, /score, …), to compare answers with."""
    with httpx.Client(base_url=f"http://{server}") as client:
        yield client


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def empty_repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "empty-repository")
