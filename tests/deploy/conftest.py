"""Fixtures for the deployment files: parsed once per session, read from the repository root."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import yaml

from tests.deploy.parsing import REPO_ROOT, Dockerfile, parse_dockerfile


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(REPO_ROOT / "Dockerfile")


@pytest.fixture(scope="session")
def compose_text() -> str:
    return (REPO_ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="session")
def compose(compose_text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(compose_text)
    return parsed


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)
