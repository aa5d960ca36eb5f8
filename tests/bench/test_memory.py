"""Where aeserve's RSS goes (bench/memory.py): the probe's accounting of imports, and the table
the serving report shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.memory import Record, Start, Status, table

REPO_ROOT = Path(__file__).resolve().parents[2]

# Imports a package (numpy pulls in many of its own modules and the standard library's), then
# a phase that grows the heap by 40 MB, then dumps.
PROBED = """
import sys
from bench.memory_probe import install
probe = install(sys.argv[1])
import numpy
grow = probe.phase("model", lambda: b"x" * (40 * 2**20))
kept = grow()
probe.dump()
"""


def test_the_probe_charges_each_package_and_phase(tmp_path: Path) -> None:
    out = tmp_path / "record.json"
    subprocess.run([sys.executable, "-c", PROBED, str(out)], cwd=REPO_ROOT, check=True)
    record = Record(**json.loads(out.read_text()))
    assert next(iter(record.packages)) == "numpy"  # in the order they were first imported
    assert record.packages["numpy"] > 5
    assert abs(sum(record.packages.values()) - record.imports_mb) < 0.01  # exact in sum
    assert 40 <= record.phases["model"] < 45
    assert record.package_s["numpy"] > 0.005  # numpy's import takes tens of ms
    assert abs(sum(record.package_s.values()) - record.imports_s) < 0.001
    assert 0 <= record.phase_s["model"] < record.imports_s + 1


def test_the_table_adds_up_to_the_rss_read() -> None:
    record = Record(
        start_mb=12.0,
        packages={"service.cli": 1.0, "numpy": 11.0, "json": 0.5, "idna": 0.2, "h11": 0.1},
        imports_mb=12.8,
        phases={"app": 0.5, "model": 10.0},
        package_s={"service.cli": 0.01, "numpy": 0.1, "json": 0.002, "idna": 0.05, "h11": 0.001},
        imports_s=0.163,
        phase_s={"app": 0.02, "model": 0.3},
    )
    ready = Status(rss_mb=50.0, file_mb=20.0, threads=9)
    warm = Status(rss_mb=60.0, file_mb=21.0, threads=11)
    start = Start(bare_s=0.05, ready_s=1.0)
    steps = [("batch 64, JSON, 8 clients, 1 s", warm)]
    lines = table(10.0, record, ready, steps, "mnist784", start)
    assert lines[2:] == [
        "| Python started, nothing imported | 10.0 | 10.0 | 0.05 | 0.05 |",
        "| import `service.cli` | 1.0 | | 0.010 | |",
        "| import `numpy` | 11.0 | | 0.100 | |",
        "| import `idna` | 0.2 | | 0.050 | |",  # small in memory, not in time
        "| import 1 other packages, under 0.5 MB and 20 ms each | 0.1 | | 0.001 | |",
        "| import the standard library's modules | 2.5 | | 0.002 | |",  # the probe's 2 MB in
        "| all imports | 14.8 | 24.8 | 0.16 | 0.21 |",
        "| building the app (`create_app`; its imports above) | 0.5 | | 0.02 | 0.23 |",
        "| loading mnist784 (`load_runtime`: an onnxruntime session per graph, the calibration "
        "scores) | 10.0 | | 0.30 | 0.53 |",
        "| the rest of start-up (uvicorn, the lifespan's threads and stores; the probe's own "
        "imports; polling /readyz every 50 ms) | 14.7 | | 0.47 | |",
        "| **at the first 200 on /readyz** (9 threads) | | **50.0** | | **1.00** |",
        "| warm-up: batch 64, JSON, 8 clients, 1 s (11 threads) | 10.0 | 60.0 | | |",
        "",
        "Of the RSS after warm-up, 21.0 MB are pages of mapped files (libraries' code and data, "
        "shareable between processes) and 39.0 MB anonymous memory (heaps, onnxruntime's arena, "
        "thread stacks); at ready 20.0 and 30.0 MB.",
    ]
