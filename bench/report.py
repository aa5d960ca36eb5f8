"""bench/results/serving.md: the tables, the issue's must-show ratios, and how to reproduce them."""

from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Load

ON, OFF, NAIVE = "aeserve, batching on", "aeserve, batching off", "naive FastAPI"
RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"
# bench/gpu.py writes its section between these; a rewrite of the file by `make bench` keeps it.
GPU_START = "<!-- gpu: written by python -m bench.gpu -->"
GPU_END = "<!-- /gpu -->"
ROWS = {"b1": 1, "b64": 64, "c64": 1, "npy256": 256}


@dataclass(frozen=True)
class Row:
    model: str
    server: str
    workload: str
    workload_label: str
    load: Load | None
    rounds: int
    error: str | None = None


def _find(rows: list[Row], server: str, workload: str) -> Load | None:
    for row in rows:
        if row.server == server and row.workload == workload and row.load is not None:
            return row.load
    return None


def _table(rows: list[Row], raw: dict[int, float]) -> list[str]:
    lines = [
        "| server | workload | requests/s | vectors/s | p50 ms | p99 ms | failed "
        "| × raw onnxruntime | × naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.load is None:
            lines.append(
                f"| {row.server} | {row.workload_label} | failed: {_cell(row.error)} | | | | | | |"
            )
            continue
        load = row.load
        limit = raw[ROWS[row.workload]]
        naive = _find(rows, NAIVE, row.workload)
        vs_naive = f"{load.vectors_per_s / naive.vectors_per_s:.2f}" if naive else "–"
        lines.append(
            f"| {row.server} | {row.workload_label} | {load.requests_per_s:,.0f} | "
            f"{load.vectors_per_s:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | {load.errors} | "
            f"{load.vectors_per_s / limit:.3f} | {vs_naive} |"
        )
    return lines


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "/").replace("\n", " ")[:400]


def _checks(rows: list[Row], raw: dict[int, float], training: Any) -> list[str]:
    def ratio(a: Load | None, b: Load | None) -> float | None:
        return a.vectors_per_s / b.vectors_per_s if a and b else None

    def line(name: str, value: float | None, target: float, detail: str = "") -> str:
        if value is None:
            return f"- {name}: not measured"
        verdict = "holds" if value >= target else "does not hold"
        return f"- {name}: **{value:.2f}×** (target ≥ {target}×) — {verdict}{detail}"

    on_c64, off_c64 = _find(rows, ON, "c64"), _find(rows, OFF, "c64")
    npy = _find(rows, ON, "npy256")
    out = [
        line(
            "/score batch 1 JSON, requests/s vs naive",
            ratio(_find(rows, ON, "b1"), _find(rows, NAIVE, "b1")),
            3,
        ),
        line(
            "/score batch 64 JSON, vectors/s vs naive",
            ratio(_find(rows, ON, "b64"), _find(rows, NAIVE, "b64")),
            4,
        ),
        line(
            "/score batch 256 .npy, vectors/s vs raw onnxruntime",
            npy.vectors_per_s / raw[256] if npy else None,
            0.6,
        ),
        line(
            "64 clients at batch 1, batching on vs off",
            ratio(on_c64, off_c64),
            2,
            f" (p99 {on_c64.p99_ms:.1f} ms on, {off_c64.p99_ms:.1f} ms off)"
            if on_c64 and off_c64
            else "",
        ),
    ]
    peers = {r.server for r in rows if not r.server.startswith(("aeserve", "naive"))}
    for workload in ("b1", "b64", "c64"):
        best = max(
            ((p, _find(rows, p, workload)) for p in peers),
            key=lambda pair: pair[1].vectors_per_s if pair[1] else -1.0,
            default=(None, None),
        )
        if best[1] is not None:
            out.append(
                line(
                    f"ahead of the best peer ({best[0]}) on {workload}",
                    ratio(_find(rows, ON, workload), best[1]),
                    1.5,
                )
            )
    if training is not None:
        out.append(line("`aeserve train` samples/s vs the hand-written loop", training.ratio, 0.9))
    return out


def write_report(
    path: Path,
    started: datetime.datetime,
    commit: str,
    machine: str,
    results: list[tuple[Any, list[Row], dict[int, float]]],
    training: Any,
    args: argparse.Namespace,
    workloads: list[Any],
) -> None:
    kept_gpu = gpu_section(path.read_text()) if path.exists() else None
    lines = [
        "# Serving benchmark",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- commit: {commit}",
        f"- machine: {machine}",
        "- command: `make bench` "
        f"(`python -m bench.serving --seconds {args.seconds:g} --rounds {args.rounds}`)",
        "- load: `wrk -t1 -cN -dS --timeout=10s -s SCRIPT URL`, each script POSTs one fixed body "
        "(bench/load.py); aeserve and the naive server are measured in alternating rounds and the "
        "median round is shown; every server is one process with onnxruntime on one thread.",
        "- GPU: see the GPU section at the end (`python -m bench.gpu`, on a GPU machine)."
        if kept_gpu
        else "- GPU: not measured here; no GPU machine was lent to this work.",
        "",
    ]
    for model, rows, raw in results:
        lines += [
            f"## {model.name}: d = {model.dim}",
            "",
            f"Trained with `{model.train_command}`. "
            "Raw onnxruntime in-process, one thread, scores only: "
            + ", ".join(f"batch {n}: {v:,.0f} vectors/s" for n, v in raw.items())
            + ".",
            "",
            *_table(rows, raw),
            "",
        ]
        if model.name == "mnist784":
            lines += [
                "### The issue's must-show ratios (this model)",
                "",
                *_checks(rows, raw, training),
                "",
            ]
    if training is not None:
        lines += [
            "## Training speed (CPU)",
            "",
            "`aeserve train` (models.training.fit, validation included): "
            f"{training.aeserve_samples_per_s:,.0f} samples/s; minimal hand-written PyTorch loop: "
            f"{training.loop_samples_per_s:,.0f} samples/s; "
            f"ratio **{training.ratio:.2f}×**. 784 → 256 → 32, {training.rows:,} MNIST-like rows, "
            f"{training.epochs} epochs, batch 256, MSE, {training.threads} torch thread; aeserve "
            "uses fused Adam (`torch.optim.Adam(fused=True)`), the loop plain Adam; "
            "medians of 3 alternating rounds (`python -m bench.training_speed`).",
            "",
        ]
    lines += ["## Workloads", ""] + [f"- `{w.key}`: {w.label}" for w in workloads] + [""]
    if kept_gpu:
        lines += [kept_gpu, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def gpu_section(text: str) -> str | None:
    """The GPU section of a results file, markers included, if it has one."""
    start, end = text.find(GPU_START), text.find(GPU_END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(GPU_END)]


def replace_gpu_section(text: str, section: str) -> str:
    """`text` with its GPU section replaced by `section`, or with `section` added at the end."""
    old = gpu_section(text)
    if old is not None:
        return text.replace(old, section)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
