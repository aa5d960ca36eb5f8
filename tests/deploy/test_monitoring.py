"""The `monitoring` profile: a real Prometheus (Debian's `prometheus`) scrapes a real
`aeserve serve`; after traffic, every PromQL expression of the Grafana dashboard returns data
through Prometheus's HTTP API. Skipped with a message when Prometheus is not installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from core.repository import ModelRepository
from tests.deploy.parsing import REPO_ROOT
from tests.service.jobs.helpers import AESERVE, free_port
from tests.tiny_model import publish_tiny_model, sample_vectors

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "aeserve.json"


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered:\n{log.read_text()}"
        time.sleep(0.1)


def start(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, ModelRepository]]:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    port = free_port()
    env = {**os.environ, "AESERVE_DEFAULT_MODEL": "tiny"}
    command = [
        str(AESERVE),
        "serve",
        "--port",
        str(port),
        "--model-repository",
        str(repository.root),
    ]
    process = start(command, tmp_path / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/readyz", process, tmp_path / "api.log")
    yield base, repository
    stop(process)


@pytest.fixture
def prometheus(tmp_path: Path, api: tuple[str, ModelRepository]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Prometheus is not installed (.ci/run installs Debian's `prometheus`)")
    # deploy/prometheus.yml, with the test's API in place of Docker's DNS and a 1 s interval.
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    job = config["scrape_configs"][0]
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [api[0].removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = start(command, tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/-/ready", process, tmp_path / "prometheus.log")
    yield base
    stop(process)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    assert response.status_code == 200, (expr, response.text)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_every_dashboard_expression_returns_data(
    api: tuple[str, ModelRepository], prometheus: str
) -> None:
    base, repository = api
    manifest = repository.manifest("tiny", 1)
    normal = sample_vectors(manifest, 400, seed=2)
    shifted = normal + np.asarray(manifest.scaling.scale, dtype=np.float32)
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    missing = expressions
    deadline = time.monotonic() + 60
    while missing:
        for rows in (normal, shifted):  # traffic through every scrape: rates need two samples
            for chunk in np.array_split(rows, 4):
                assert (
                    httpx.post(f"{base}/score", json={"vectors": chunk.tolist()}).status_code == 200
                )
        assert httpx.post(f"{base}/score", json={"vectors": [[1.0]]}).status_code == 422
        missing = [expr for expr in expressions if not query(prometheus, expr)]
        assert time.monotonic() < deadline, f"no data for: {missing}"
        time.sleep(0.5)


def test_compose_mounts_the_monitoring_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    for volume in volumes:
        source = volume.split(":")[0]
        assert (REPO_ROOT / source).exists(), source
    provisioning = REPO_ROOT / "deploy" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
