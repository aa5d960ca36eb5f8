"""The GPU benchmark's results section: written between markers, kept when `make bench` rewrites."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.gpu import BATCHES, ort_plain, section, vectors_per_s
from bench.report import GPU_END, GPU_START, gpu_section, replace_gpu_section, write_report
from core.repository import ModelRepository
from tests.tiny_model import publish_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def _table() -> dict[str, dict[int, float]]:
    ways = ("onnxruntime, CPU provider", "onnxruntime, CUDA provider, IO binding")
    return {way: {n: 1000.0 * n * (i + 1) for n in BATCHES} for i, way in enumerate(ways)}


def test_a_section_is_added_once_and_then_replaced() -> None:
    first = section(_table(), "NVIDIA H200, 580.1, 143771 MiB", Path("v/1"), 3)
    added = replace_gpu_section("# Serving benchmark\n\nbody\n", first)
    assert added.startswith("# Serving benchmark\n\nbody\n\n" + GPU_START)
    assert gpu_section(added) == first
    second = first.replace("H200", "H100")
    replaced = replace_gpu_section(added, second)
    assert replaced.count(GPU_START) == 1 and replaced.count(GPU_END) == 1
    assert gpu_section(replaced) == second and "body" in replaced
    assert replace_gpu_section("", first) == first + "\n"


def test_the_section_names_the_gpu_and_gives_each_ratio_to_the_cpu_provider() -> None:
    text = section(_table(), "NVIDIA H200", Path("v/1"), 3)
    assert "- GPU: NVIDIA H200; onnxruntime" in text
    assert "`python -m bench.gpu v/1 --seconds 3`" in text
    row = next(line for line in text.splitlines() if line.startswith("| onnxruntime, CUDA"))
    assert row.count("(2.00×)") == len(BATCHES)


def test_make_bench_keeps_the_gpu_section_when_it_rewrites_the_file(tmp_path: Path) -> None:
    path = tmp_path / "serving.md"
    kept = section(_table(), "NVIDIA H200", Path("v/1"), 3)
    path.write_text(replace_gpu_section("# Serving benchmark\n\nold tables\n", kept))
    args = argparse.Namespace(seconds=5.0, rounds=3)
    started = datetime.datetime(2026, 11, 26, 9, 0)
    write_report(path, started, "abc1234", "2 cores", [], None, args, [])
    text = path.read_text()
    assert "old tables" not in text and gpu_section(text) == kept
    assert "- GPU: see the GPU section at the end" in text
    path.unlink()
    write_report(path, started, "abc1234", "2 cores", [], None, args, [])
    assert gpu_section(path.read_text()) is None
    assert "- GPU: not measured here" in path.read_text()


def test_the_measuring_helpers_score_a_real_model_on_the_cpu(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    version = publish_tiny_model(repository, "tiny")
    folder = tmp_path / "tiny" / str(version)
    session = ort.InferenceSession(str(folder / "autoencoder.onnx"))
    dim = session.get_inputs()[0].shape[1]
    x = np.random.default_rng(0).random((4, dim), dtype=np.float32)
    (scores,) = ort_plain(session, x)()  # type: ignore[misc]
    assert scores.shape == (4,)
    assert vectors_per_s(ort_plain(session, x), 4, 0.03) > 0


def test_without_a_cuda_provider_it_stops_before_writing_anything(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    results = ROOT / "bench" / "results" / "serving.md"
    before = results.read_text() if results.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "no CUDA provider" in done.stderr
    assert (results.read_text() if results.exists() else None) == before
