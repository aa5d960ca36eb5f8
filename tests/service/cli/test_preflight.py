"""`aeserve serve` and `aeserve worker` refuse to start, with a message and no traceback, when the
model repository is not writable by their uid (a root-owned bind mount at /models; tests/deploy/test_containers.py mounts one for real) or when a
deployment that requires an API key has none (docker-compose.yml). Real commands, real uids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

AESERVE = Path(sys.executable).parent / "aeserve"


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [str(AESERVE), *argv],
        env={**os.environ, "AESERVE_BROKER_URL": "redis://127.0.0.1:1/0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def unwritable_repository(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write: read-only to its owner, or, for root (CI), which
    permissions do not stop, immutable (`chattr +i`)."""
    root = tmp_path / "models"
    root.mkdir()
    if os.getuid() != 0:
        root.chmod(0o555)
        yield root
        root.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(root)]).returncode != 0:
        pytest.skip("running as root, and `chattr +i` cannot make a folder unwritable here")
    try:
        yield root
    finally:
        subprocess.run([chattr, "-i", str(root)], check=True)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unwritable_repository_is_named_with_the_fix(
    unwritable_repository: Path, command: str
) -> None:
    root, uid = unwritable_repository, os.getuid()
    code, output = run([command], {"AESERVE_MODEL_REPOSITORY": str(root)})
    assert code == 2, output
    assert output.startswith(f"aeserve {command}: the model repository {root} (owner uid {uid}")
    assert f"is not writable by uid {uid}, which this process runs as: " in output
    assert f"sudo chown -R {uid}:{os.getgid()} <host folder>" in output
    assert "Traceback" not in output


def test_a_required_api_key_that_is_missing_stops_serve(tmp_path: Path) -> None:
    env = {"AESERVE_MODEL_REPOSITORY": str(tmp_path), "AESERVE_REQUIRE_API_KEY": "true"}
    # Unset, and set empty as docker-compose.yml's `${AESERVE_API_KEY:-}` sets it.
    for key in ({}, {"AESERVE_API_KEY": ""}):
        code, output = run(["serve"], {**env, **key})
        assert code == 2, output
        assert output.startswith(
            "aeserve serve: AESERVE_API_KEY is not set, and this deployment requires one"
        )
        assert "Traceback" not in output


def test_an_empty_api_key_stops_serve(tmp_path: Path) -> None:
    """`Authorization: Bearer ` would match an empty key: refused even when not required."""
    code, output = run(
        ["serve"], {"AESERVE_MODEL_REPOSITORY": str(tmp_path), "AESERVE_API_KEY": " "}
    )
    assert code == 2, output
    assert output == (
        "aeserve serve: AESERVE_API_KEY is set but empty: give it a secret value, "
        "or unset it for an open API\n"
    )
