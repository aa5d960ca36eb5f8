"""schemathesis against a real `aeserve serve` with a tiny model and the key: every operation of
/openapi.json, stateful links included, with a fixed seed; no 5xx, and every answer has the
content type and schema the document gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.repository import ModelRepository
from tests.real_server import serve
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
KEY = "fuzz-key"
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="pip install -e '.[dev]' for schemathesis")
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    with serve(repository.root, tmp_path / "serve.log", api_key=KEY, default_model="tiny") as api:
        command = [str(SCHEMATHESIS), "run", f"{api.base}/openapi.json", "--no-color"]
        command += ["-H", f"Authorization: Bearer {KEY}", "--checks", CHECKS]
        command += ["--max-examples", "10", "--seed", "1", "--generation-deterministic"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "generated" in run.stdout
