"""schemathesis against a real `aeserve serve` with a tiny model and the key: every operation of
/openapi.json, every check, a fixed seed, in all four phases (examples, coverage, fuzzing, and
stateful: chains of calls that follow the document's links, each taking the id, name or version
the last answer gave); at least 2,000 generated requests, and none fails a check (no 5xx; every
answer's status, content type, headers and schema as documented; the key required where the
document says so and nowhere else; schema-valid requests accepted and schema-invalid ones
refused; 405 with `Allow` for undocumented methods). 2,637 requests, about 800 of them in 90
chains that follow 70 of the document's links, in 45 to 50 s on a 2-core machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.repository import ModelRepository
from tests.real_server import serve
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
KEY = "fuzz-key"
EXAMPLES = 20  # generated requests an operation in the fuzzing phase
SCENARIOS = 70  # chains of up to 12 calls in the stateful phase
LEAST_CASES = 2_000
LEAST_SCENARIOS = 50
LEAST_LINKS = 40
# Every check is on (schemathesis's default; `--checks all` would also override this file), but
# one, positive_data_acceptance, is off where whether a request is usable depends on what no JSON
# schema states: a file's contents (/datasets, /import), rows as wide as each other and a model of
# that name (/train), a tensor's shape times its data's length (/v2 infer), and rows the model
# overflows float32 on (a 422 naming the row; tests/service/http/routes/test_overflow.py).
# A /train the server accepts trains a real model in a real process, and GET /jobs/{id}/events
# streams until that job ends: generated bodies train 2 epochs (`config.epochs` up to 100,000
# would keep a job, and the stream following it, running for minutes), and the server takes
# models of at most 100,000 parameters (`hidden_dims` up to its default 50 million would too).
# The stateful phase sends schema-valid requests only: it builds chains on resources that exist,
# while the coverage and fuzzing phases send the schema-invalid ones.
CONFIG = f"""
[[operations]]
include-method = "POST"
include-path-regex = "^/(encode|decode|reconstruct|score|train|datasets|import)$|/infer$"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-method = "POST"
include-path = "/train"
parameters = {{ "body.config.epochs" = 2 }}

[phases.stateful]
max-steps = 12

[phases.stateful.generation]
mode = "positive"
max-examples = {SCENARIOS}
"""
# The stateful phase's summary, e.g.
#  ✅  Stateful (in 21.84s)
#
#      Scenarios:    131
#      API Links:    84 covered / 165 selected / 165 total (37 inferred)
STATEFUL = re.compile(
    r"Stateful \(in [\d.]+s\)\s+Scenarios:\s+(\d+)\s+"
    r"API Links:\s+(\d+) covered / \d+ selected / (\d+) total(?: \((\d+) inferred\))?"
)


def declared_links(document: dict[str, Any]) -> int:
    return sum(
        len(response.get("links", {}))
        for operations in document["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
    )


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="pip install -e '.[dev]' for schemathesis")
def test_every_generated_request_passes_every_check(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {"api_key": KEY, "default_model": "tiny", "max_parameters": "100000"}
    with serve(repository.root, tmp_path / "serve.log", **env) as api:
        declared = declared_links(httpx.get(f"{api.base}/openapi.json").json())
        command = [str(SCHEMATHESIS), "--config-file", str(config), "run", "--no-color"]
        command += [f"{api.base}/openapi.json", "-H", f"Authorization: Bearer {KEY}"]
        command += ["--max-examples", str(EXAMPLES), "--seed", "1"]
        command += ["--generation-database", "none"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    # The summary's count line, e.g. "2781 generated, 2781 passed, 18 skipped".
    counts = re.search(r"^\s*(\d+) generated, (\d+) passed\b", run.stdout, re.MULTILINE)
    assert counts is not None, report
    generated, passed = int(counts[1]), int(counts[2])
    assert generated >= LEAST_CASES, report
    assert passed == generated, report
    stateful = STATEFUL.search(run.stdout)
    assert stateful is not None, report
    scenarios, covered, total = int(stateful[1]), int(stateful[2]), int(stateful[3])
    assert scenarios >= LEAST_SCENARIOS, report
    assert covered >= LEAST_LINKS, report
    # Every link the document declares is one schemathesis follows, besides those it infers.
    assert declared > 0
    assert total - int(stateful[4] or 0) == declared, report
