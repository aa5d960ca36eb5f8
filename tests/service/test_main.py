"""The serving entry point stays free of torch: importing it and building the app loads none."""

from __future__ import annotations

import subprocess
import sys


def test_import_service_main_leaves_torch_out():
    code = (
        "import sys, service, service.main\n"
        "service.main.app_from_environment()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
