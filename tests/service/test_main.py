"""The serving entry point stays free of torch and of the training package: importing it and
building the app loads neither."""

from __future__ import annotations

import subprocess
import sys


def test_import_service_main_leaves_torch_and_training_out() -> None:
    code = (
        "import sys, service, service.main\n"
        "service.main.app_from_environment()\n"
        "loaded = sorted(m for m in sys.modules if m in ('torch', 'onnx') or m.split('.')[0] == 'models')\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
