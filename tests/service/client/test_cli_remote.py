"""`aeserve jobs` and `aeserve datasets` against a real server, as a user runs them: the server
from $AESERVE_URL (or --url), the key from $AESERVE_API_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from service.cli import remote
from service.client import Client, sync
from tests.service.client.conftest import API_KEY, NAMES, Server
from tests.service.jobs.helpers import rows as training_rows

AESERVE = str(Path(sys.executable).with_name("aeserve"))


def run(server: Server, *args: str, key: str | None = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AESERVE_URL": server.url, "COLUMNS": "200"}
    env.pop("AESERVE_API_KEY", None)
    if key is not None:
        env["AESERVE_API_KEY"] = key
    return subprocess.run([AESERVE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_datasets_upload_list_delete(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "vitals.csv"
    data = np.asarray(training_rows(n=30, d=4), dtype=np.float32)
    path.write_text(",".join(NAMES) + "\n" + "\n".join(",".join(map(str, r)) for r in data))
    uploaded = run(server, "datasets", "upload", str(path))
    assert uploaded.returncode == 0, uploaded.stderr
    assert f"uploaded {path} to {server.url} as dataset " in uploaded.stdout
    assert "30 rows × 4 features" in uploaded.stdout
    dataset = uploaded.stdout.split("as dataset ")[1].split(":")[0]
    listed = run(server, "datasets", "list")
    assert (
        dataset in listed.stdout and "vitals.csv" in listed.stdout and "age, pulse" in listed.stdout
    )
    deleted = run(server, "datasets", "delete", dataset)
    assert deleted.stdout.strip() == f"deleted dataset {dataset} from {server.url}"
    again = run(server, "datasets", "delete", dataset)
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: 404: dataset {dataset!r} does not exist")


def test_jobs_list_show_follow_cancel(server: Server) -> None:
    with Client(server.url, api_key=API_KEY) as client:
        submitted = client.train("cli-followed", training_rows(n=40, d=4), config={"epochs": 3})
    followed = run(server, "jobs", "follow", submitted.job_id)
    assert followed.returncode == 0, followed.stderr
    assert (
        f"job {submitted.job_id} succeeded: cli-followed version 1 (active) on {server.url}"
        in followed.stdout
    )
    listed = run(server, "jobs", "list", "--limit", "5")
    assert submitted.job_id in listed.stdout and "succeeded" in listed.stdout
    shown = run(server, "jobs", "show", submitted.job_id)
    assert f'"job_id": "{submitted.job_id}"' in shown.stdout
    cancelled = run(server, "jobs", "cancel", submitted.job_id)
    assert cancelled.returncode == 2
    assert cancelled.stderr.startswith("error: 409: ")


def test_without_the_key_or_the_server(server: Server) -> None:
    anonymous = run(server, "jobs", "list", key=None)
    assert anonymous.returncode == 2 and anonymous.stderr.startswith("error: 401: ")
    nowhere = run(server, "datasets", "list", "--url", "http://127.0.0.1:9")
    assert nowhere.returncode == 2
    assert nowhere.stderr.startswith("error: cannot reach http://127.0.0.1:9")


def test_help_shows_the_defaults() -> None:
    result = subprocess.run(
        [AESERVE, "jobs", "list", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "AESERVE_URL" in result.stdout and "http://127.0.0.1:8000" in result.stdout
    assert "$AESERVE_API_KEY" in result.stdout


def test_the_commands_default_to_the_clients_url() -> None:
    assert remote.DEFAULT_URL == sync.DEFAULT_URL
