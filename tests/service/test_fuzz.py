"""schemathesis against a real `aeserve serve` with a tiny model and the key: every operation of
/openapi.json, stateful links included, every check, a fixed seed; at least 2,000 generated
requests, and none fails a check (no 5xx; every answer's status, content type, headers and
schema as documented; the key required where the document says so and nowhere else; schema-valid
requests accepted and schema-invalid ones refused; 405 with `Allow` for undocumented methods)."""

from __future__ import annotations

import re
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
EXAMPLES = 50  # about 3,000 requests in all, 30 s on an idle machine
LEAST_CASES = 2_000
# Every check is on (schemathesis's default; `--checks all` would also override this file), but
# one, positive_data_acceptance, is off where whether a request is usable depends on what no JSON
# schema states: a file's contents (/datasets, /import), rows as wide as each other and a model of
# that name (/train), a tensor's shape times its data's length (/v2 infer), and rows the model
# overflows float32 on (a 422 naming the row; tests/service/http/routes/test_overflow.py).
CONFIG = """
[[operations]]
include-method = "POST"
include-path-regex = "^/(encode|decode|reconstruct|score|train|datasets|import)$|/infer$"
checks.positive_data_acceptance.enabled = false
"""


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="pip install -e '.[dev]' for schemathesis")
def test_every_generated_request_passes_every_check(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with serve(repository.root, tmp_path / "serve.log", api_key=KEY, default_model="tiny") as api:
        command = [str(SCHEMATHESIS), "--config-file", str(config), "run", "--no-color"]
        command += [f"{api.base}/openapi.json", "-H", f"Authorization: Bearer {KEY}"]
        command += ["--max-examples", str(EXAMPLES), "--seed", "1"]
        command += ["--generation-database", "none"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    # The summary's count line, e.g. "2958 generated, 2958 passed, 10 skipped".
    counts = re.search(r"^\s*(\d+) generated, (\d+) passed\b", run.stdout, re.MULTILINE)
    assert counts is not None, report
    generated, passed = int(counts[1]), int(counts[2])
    assert generated >= LEAST_CASES, report
    assert passed == generated, report
