"""With `aeserve serve --workers 2`, /metrics counts every worker's requests: whichever worker
answers a scrape, the request counter equals the requests sent, and never goes back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.repository import ModelRepository
from service.observability.shared_metrics import FLUSH_S
from tests.service.cli.test_serve import free_port, wait_ready
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.slow

SENT = 120
SCORED = re.compile(r'^aeserve_requests_total\{[^}]*route="/score"[^}]*\} (\S+)$', re.MULTILINE)
ROWS = re.compile(r'^aeserve_batch_rows_count\{[^}]*route="/score"[^}]*\} (\S+)$', re.MULTILINE)


def _count(pattern: re.Pattern[str], text: str) -> float:
    return sum(float(value) for value in pattern.findall(text))


def test_counters_add_up_across_workers(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository")
    publish_tiny_model(repository, "tiny", seed=0)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AESERVE_METRICS_DIR"}
    aeserve = Path(sys.executable).with_name("aeserve")
    command = [str(aeserve), "serve", "--port", str(port), "--workers", "2"]
    command += ["--repository", str(repository.root), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=(tmp_path / "serve.out").open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)

        def score(_: int) -> int:  # a connection each, so both workers take some
            return httpx.post(f"{base}/score", json={"vectors": [[0.1, 0.2, 0.3, 0.4]]}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(score, range(SENT))) == {200}
        time.sleep(FLUSH_S * 2 + 0.5)  # each worker writes its totals every FLUSH_S
        scrapes = [httpx.get(f"{base}/metrics").text for _ in range(12)]
        assert [_count(SCORED, text) for text in scrapes] == [SENT] * 12
        assert [_count(ROWS, text) for text in scrapes] == [SENT] * 12
        # Gauges that describe one process are there once, not once per worker.
        assert scrapes[0].count("\naeserve_model_loaded_version{") == 1

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(score, range(SENT))) == {200}
        seen = []
        for _ in range(10):
            seen.append(_count(SCORED, httpx.get(f"{base}/metrics").text))
            time.sleep(FLUSH_S / 2)
        assert seen == sorted(seen) and seen[-1] == 2 * SENT  # never back, all in the end
    finally:
        process.terminate()
        process.wait(timeout=20)
