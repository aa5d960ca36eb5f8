"""The API process never imports torch or the training package, even while it queues jobs."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, tempfile
from fastapi.testclient import TestClient
from service.http.app import create_app
from core.settings import Settings
import service.jobs.celery.backend, service.jobs.local.backend
settings = Settings(model_repository=tempfile.mkdtemp())
with TestClient(create_app(settings)) as client:
    files = {"file": ("rows.csv", b"1,2\\n3,4\\n")}
    assert client.post("/datasets", files=files).status_code == 201
    body = {"name": "m", "data": {"vectors": [[1.0, 2.0, 3.0]] * 12}, "config": {"epochs": 1}}
    assert client.post("/train", json=body).status_code == 202
print(sorted(m for m in sys.modules if m == "torch" or m.split(".")[0] == "models"))
"""


def test_the_api_process_does_not_import_torch():
    # A fresh interpreter: this one has torch loaded by other tests.
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
