"""Deployments the job contract runs against: the local backend, and Celery with a real Redis and
a real `aeserve worker`. Fixtures chain deployment → app → client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from tests.service.jobs.helpers import API_KEY, HEARTBEAT_TIMEOUT_S, RedisServer, Worker

CONCURRENCY = 2
BACKENDS = ["local", "celery"]


@dataclass
class Deployment:
    kind: str
    settings: Settings
    workers: list[Worker] = field(default_factory=list)

    @property
    def repository(self) -> ModelRepository:
        return ModelRepository(self.settings.model_repository)

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings), raise_server_exceptions=False)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


Deploy = Callable[[str, RedisServer | None], Deployment]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deploy]:
    """Start a fresh deployment of a backend: its own repository and, for Celery, its own Redis
    database and worker. Stopped at the end of the session."""
    started: list[Deployment] = []
    redis_databases = iter(range(16))

    def start(kind: str, redis_server: RedisServer | None = None) -> Deployment:
        root = tmp_path_factory.mktemp(kind)
        broker_url = Settings().broker_url
        if redis_server is not None:
            broker_url = redis_server.url(next(redis_databases))
        settings = Settings(
            model_repository=root / "repository",
            api_key=API_KEY,
            reload_interval_s=0.2,
            max_concurrent_jobs=CONCURRENCY,
            job_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
            job_backend=kind,
            max_body_bytes=2_000_000,
            broker_url=broker_url,
        )
        deployment = Deployment(kind, settings)
        started.append(deployment)
        if kind == "celery":
            worker = Worker(
                settings.broker_url, settings.model_repository, CONCURRENCY, root / "worker.log"
            )
            deployment.workers.append(worker)
        return deployment

    yield start
    for deployment in started:
        deployment.stop()


def start_deployment(request: pytest.FixtureRequest, deploy: Deploy, kind: str) -> Deployment:
    """Redis is started only when a Celery deployment is asked for."""
    redis_server = request.getfixturevalue("redis_server") if kind == "celery" else None
    return deploy(kind, redis_server)


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    """One deployment per backend, shared by a module's tests (each uses its own model names)."""
    return start_deployment(request, deploy, request.param)


@pytest.fixture
def client(deployment: Deployment) -> Iterator[TestClient]:
    with deployment.client() as client:
        yield client
