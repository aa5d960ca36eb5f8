"""The request series of a version no longer served leave /metrics after
`metrics_version_ttl_s`: every promotion added series to the request counter and the latency
histogram, which were never forgotten."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from core.repository import ModelRepository
from core.settings import Settings
from service.http.app import create_app
from service.observability.metrics import Metrics
from tests.tiny_model import publish_tiny_model

AUTH = {"Authorization": "Bearer series-key"}


def _observe(metrics: Metrics, version: str, model: str = "m") -> None:
    metrics.observe_request("/score", "POST", model, version, "200", 0.001)


def _versions(text: bytes, name: bytes = b"aeserve_requests_total") -> set[str]:
    pattern = re.escape(name) + rb'\{[^}]*version="([^"]*)"'
    return {match.decode() for match in re.findall(pattern, text)}


def test_a_version_no_longer_served_is_forgotten_after_the_ttl() -> None:
    metrics = Metrics(version_ttl_s=60)
    for version in ("1", "2", ""):
        _observe(metrics, version)
    metrics.versions.served = lambda: {("m", "2")}
    now = time.monotonic()  # a scrape expires series on the real clock
    assert metrics.versions.expire(now=now) is False  # noted as unserved, kept for now
    assert _versions(metrics.exposition()) == {"1", "2", ""}
    assert metrics.versions.expire(now=now + 59) is False
    assert metrics.versions.expire(now=now + 60) is True
    text = metrics.exposition()
    assert _versions(text) == {"2", ""}
    assert _versions(text, b"aeserve_request_duration_seconds_count") == {"2", ""}


def test_a_version_served_again_starts_its_wait_afresh() -> None:
    metrics = Metrics(version_ttl_s=60)
    _observe(metrics, "1")
    served = {("m", "2")}
    metrics.versions.served = lambda: served
    metrics.versions.expire(now=0.0)
    served.add(("m", "1"))  # rolled back, or pinned and cached
    metrics.versions.expire(now=30.0)
    served.discard(("m", "1"))
    assert metrics.versions.expire(now=80.0) is False  # unserved again only since 80
    assert metrics.versions.expire(now=140.0) is True


def test_forgotten_series_leave_the_files_shared_by_workers(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, version_ttl_s=0)
    try:
        for version in ("1", "2"):
            _observe(metrics, version)
        metrics.versions.served = lambda: {("m", "2")}
        text = metrics.exposition()
        assert _versions(text) == {"2"}
        assert re.search(rb'aeserve_requests_total\{[^}]*version="2"[^}]*\} 1\.0', text)
        _observe(metrics, "2")
        assert re.search(rb'version="2"[^}]*\} 2\.0', metrics.exposition())
        assert not list(tmp_path.glob("*.new"))
    finally:
        metrics.close()


def test_a_promotion_retires_the_old_versions_series(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    publish_tiny_model(repository, "tiny", seed=1, promote=False)
    publish_tiny_model(repository, "tiny", seed=2, promote=False)
    settings = Settings(
        model_repository=repository.root,
        default_model="tiny",
        api_key="series-key",
        metrics_version_ttl_s=0,
    )
    with TestClient(create_app(settings)) as client:
        # A cache of one version: a promotion caches the version it replaces, which still
        # serves the requests naming it, so v1 leaves memory when v3 is promoted.
        client.app.state.registry.cache_size = 1  # type: ignore[attr-defined]
        client.post("/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).raise_for_status()
        assert "1" in _versions(client.get("/metrics").content)
        for version in (2, 3):
            client.post(f"/models/tiny/versions/{version}/promote", headers=AUTH)
            client.post("/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).raise_for_status()
        client.get("/metrics")
        assert _versions(client.get("/metrics").content) == {"2", "3", ""}
