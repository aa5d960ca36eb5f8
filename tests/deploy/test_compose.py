"""docker-compose.yml against the Compose Specification's JSON schema, then the wiring itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.data import SCHEMAS
from tests.deploy.parsing import REPO_ROOT, Dockerfile

API_KEY = "${AESERVE_API_KEY:-}"
APP_SERVICES = ["api", "worker", "default-model", "api-gpu", "worker-gpu"]
COMPOSE_PLUGINS = [
    "/usr/local/lib/docker/cli-plugins/docker-compose",
    "/usr/libexec/docker/cli-plugins/docker-compose",
    "/usr/lib/docker/cli-plugins/docker-compose",
]


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert errors == []


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    profiles = {name: service.get("profiles", []) for name, service in services.items()}
    assert profiles == {
        "api": [],
        "worker": [],
        "default-model": [],
        "redis": [],
        "api-gpu": ["gpu"],
        "worker-gpu": ["gpu"],
        "proxy": ["proxy"],
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }


def test_no_fixed_container_names(services: dict[str, dict[str, Any]]) -> None:
    """`--scale api=3` needs distinct container names, so Compose must choose them."""
    assert [name for name, service in services.items() if "container_name" in service] == []


def test_only_the_api_publishes_a_port_and_never_a_fixed_host_port(
    services: dict[str, dict[str, Any]],
) -> None:
    """A container port alone: each replica gets its own ephemeral host port."""
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {
        "api": ["8000"],
        "api-gpu": ["8000"],
        "proxy": ["${AESERVE_PROXY_PORT:-8080}:8080"],
        "prometheus": ["${AESERVE_PROMETHEUS_PORT:-9090}:9090"],
        "grafana": ["${AESERVE_GRAFANA_PORT:-3000}:3000"],
    }


def test_api_runs_one_uvicorn_process_per_container_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    """Defect 4: with two processes per replica, /metrics answered from either in turn (counters
    3, 3, 4, 3, 4 …, which Prometheus reads as resets). One process per container, scaled by
    replicas, keeps each replica's /metrics whole."""
    expected = ["aeserve", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert services["api"]["command"] == [*expected, "--workers", "${AESERVE_WORKERS:-1}"]
    assert services["worker"]["command"] == ["aeserve", "worker"]


def test_app_services_share_the_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["AESERVE_API_KEY"] == API_KEY, name
        assert environment["AESERVE_JOB_BACKEND"] == "celery", name
        assert environment["AESERVE_BROKER_URL"] == "redis://redis:6379/0", name
        assert environment["AESERVE_MODEL_REPOSITORY"] == "/models", name
        assert environment["AESERVE_DEFAULT_MODEL"] == "${AESERVE_DEFAULT_MODEL:-}", name
        assert environment["AESERVE_REQUIRE_API_KEY"] == "true", name
    assert services["api"]["environment"]["AESERVE_PROVIDERS"] == "cpu"
    assert services["api-gpu"]["environment"]["AESERVE_PROVIDERS"] == "cuda"


def test_no_default_model_is_forced(compose_text: str) -> None:
    """Defect 1: `${AESERVE_DEFAULT_MODEL:-digits}` could not be cleared, so a repository
    without `digits` was never ready. Unset by default, and settable to any model."""
    uses = re.findall(r"\$\{AESERVE_DEFAULT_MODEL[^}]*\}", compose_text)
    assert uses == ["${AESERVE_DEFAULT_MODEL:-}"]
    assert "digits" not in compose_text.split("services:")[0]


def test_the_api_key_is_enforced_by_the_api_not_by_compose(compose_text: str) -> None:
    """Defect 6: `${AESERVE_API_KEY:?…}` made every compose command (`ps`, `logs`, `down`) fail
    without the key in the shell. No variable is required by Compose; the API refuses to start
    without the key (AESERVE_REQUIRE_API_KEY; tests/service/cli/test_preflight.py)."""
    assert re.findall(r"\$\{\w+:?\?[^}]*\}", compose_text) == []
    uses = re.findall(r"\$\{AESERVE_API_KEY[^}]*\}", compose_text)
    assert uses == [API_KEY]
    assert not (REPO_ROOT / ".env").exists()


def test_compose_commands_run_without_the_api_key() -> None:
    """`docker compose config` interpolates the file as `ps`, `logs` and `down` do; it must not
    need AESERVE_API_KEY."""
    compose = shutil.which("docker-compose") or next(
        (p for p in COMPOSE_PLUGINS if Path(p).is_file()), None
    )
    if compose is None:
        pytest.skip("no Docker Compose CLI here (tests/deploy/test_containers.py sets one up)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AESERVE_")}
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_worker_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    """Defect 7; the same check as the image's (models/jobs/health.py)."""
    check = services["worker"]["healthcheck"]
    assert check["test"] == ["CMD", "python", "-m", "models.jobs.health"]
    assert check["timeout"] == "10s"


def test_first_run_service_trains_once_and_exits(services: dict[str, dict[str, Any]]) -> None:
    """Defect 2's other half: the default model is trained at the first `up`, into the shared
    volume, by a one-shot service on the worker image; later `up`s find models and do nothing.
    Nothing waits for it: the API is ready with an empty repository."""
    first_run = services["default-model"]
    assert first_run["build"] == {"context": ".", "target": "worker"}
    assert first_run["restart"] == "no"
    assert first_run["healthcheck"] == {"disable": True}
    assert first_run["command"][-1] == "--if-empty"
    assert "depends_on" not in first_run
    assert not [name for name, s in services.items() if "default-model" in s.get("depends_on", {})]


def test_model_repository_is_one_named_volume_at_the_configured_path(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Datasets live in `<repository>/.datasets` (no AESERVE_DATA_DIR), so the one volume carries
    uploads from the API to the workers as well as models back."""
    assert compose["volumes"] == {"models": None, "redis-data": None}
    for name in APP_SERVICES:
        assert services[name]["volumes"] == ["models:/models"], name
        assert "AESERVE_DATA_DIR" not in services[name]["environment"], name


def test_redis_is_pinned_with_a_volume_and_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    redis = services["redis"]
    assert redis["image"] == "redis:7.4-alpine"
    assert redis["volumes"] == ["redis-data:/data"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis


def test_api_healthcheck_asks_readyz(services: dict[str, dict[str, Any]]) -> None:
    test = services["api"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/readyz" in test[3]


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    depends = {name: service.get("depends_on", {}) for name, service in services.items()}
    assert depends == {
        "api": {"redis": {"condition": "service_healthy"}},
        "worker": {"redis": {"condition": "service_healthy"}},
        "default-model": {},
        "redis": {},
        "api-gpu": {"redis": {"condition": "service_healthy"}},
        "worker-gpu": {"redis": {"condition": "service_healthy"}},
        "proxy": {"api": {"condition": "service_healthy"}},
        "prometheus": {},
        "grafana": {"prometheus": {"condition": "service_healthy"}},
    }
    for waits in depends.values():
        for target in waits:
            assert "healthcheck" in services[target], target


def test_gpu_services_reserve_an_nvidia_device(services: dict[str, dict[str, Any]]) -> None:
    for name in ["api-gpu", "worker-gpu"]:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
    assert [name for name, s in services.items() if "deploy" in s] == ["api-gpu", "worker-gpu"]


def test_build_targets_are_dockerfile_stages(
    services: dict[str, dict[str, Any]], dockerfile: Dockerfile
) -> None:
    targets = {name: s["build"]["target"] for name, s in services.items() if "build" in s}
    assert targets == {
        "api": "serve",
        "worker": "worker",
        "default-model": "worker",
        "api-gpu": "serve-gpu",
        "worker-gpu": "worker-gpu",
    }
    assert set(targets.values()) <= set(dockerfile.stages)
    assert {s["build"]["context"] for s in services.values() if "build" in s} == {"."}


def test_proxy_balances_over_every_api_replica(services: dict[str, dict[str, Any]]) -> None:
    proxy = services["proxy"]
    assert proxy["image"] == "nginx:1.27-alpine"
    (mount,) = proxy["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")
    config = (REPO_ROOT / source).read_text()
    # Docker's DNS is asked again every few seconds, so new replicas join without a reload.
    assert "resolver 127.0.0.11 valid=5s" in config
    assert "set $aeserve_api http://api:8000;" in config
    assert "proxy_pass $aeserve_api;" in config
    assert services["api-gpu"]["networks"] == {"default": {"aliases": ["api"]}}
