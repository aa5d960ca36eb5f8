"""deploy/compose.object-storage.yml: replicas and workers that share no volume, only the
object store and Redis, with the settings the object-storage repository reads."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from core.settings import Settings
from tests.deploy.parsing import REPO_ROOT, compose_default

COMPOSE = REPO_ROOT / "deploy" / "compose.object-storage.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return found


def test_two_api_replicas_and_two_workers_share_no_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("api", "worker"):
        assert services[name]["deploy"]["replicas"] == 2
        assert "volumes" not in services[name]
        assert services[name]["depends_on"]["bucket"] == {
            "condition": "service_completed_successfully"
        }
    assert {"minio", "bucket", "redis", "proxy"} <= services.keys()
    (proxy_config,) = services["proxy"]["volumes"]
    assert (COMPOSE.parent / proxy_config.split(":")[0]).is_file()


def test_the_services_read_the_object_storage_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    env = {k: compose_default(str(v)) for k, v in services["api"]["environment"].items()}
    assert env == {k: compose_default(str(v)) for k, v in services["worker"]["environment"].items()}
    settings = Settings.model_validate(
        {
            key.removeprefix("AESERVE_").lower(): value
            for key, value in env.items()
            if key.startswith("AESERVE_") and value
        }
        | {"store_endpoint": env["AWS_ENDPOINT_URL"]}
    )
    assert settings.repository_in_store
    assert settings.model_repository == "s3://aeserve/models"
    assert settings.store_endpoint == "http://minio:9000"
    bucket_command = services["bucket"]["command"][0]
    assert "mb --ignore-existing store/aeserve" in bucket_command
