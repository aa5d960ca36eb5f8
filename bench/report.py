"""bench/results/serving.md and the README's summary of it: tables, ratios, the issue's checks.

Every ratio is taken round by round between two rows of the same workload and the same thread
budget (threads that may run onnxruntime at once), then summarised as the median of the rounds
with their range.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import Load
from bench.machine import Memory

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serving.md"
README = ROOT / "README.md"
# bench/gpu.py writes its section between these; a rewrite of the file by `make bench` keeps it.
GPU_START = "<!-- gpu: written by python -m bench.gpu -->"
GPU_END = "<!-- /gpu -->"
# The README's summary, rewritten by `make bench` from the same numbers.
README_START = "<!-- bench: written by python -m bench.serving from bench/results/serving.md -->"
README_END = "<!-- /bench -->"

RAW, NAIVE, AESERVE, PEER = "raw", "naive", "aeserve", "peer"
_KIND_ORDER = {RAW: 0, NAIVE: 1, AESERVE: 2, PEER: 3}


@dataclass
class Row:
    """One contender on one workload: its load in each round (None where that round failed)."""

    server: str
    kind: str  # RAW, NAIVE, AESERVE or PEER
    budget: int
    workload: str
    workload_label: str
    loads: list[Load | None] = field(default_factory=list)
    error: str | None = None
    workers: int = 1  # aeserve's --workers
    batching: bool | None = None

    @property
    def measured(self) -> list[Load]:
        return [load for load in self.loads if load is not None]


@dataclass
class Footprint:
    """A server's start and memory: ready time, RSS after warm-up and after the run."""

    server: str
    budget: int
    note: str  # how its budget is set
    ready_s: list[float] = field(default_factory=list)
    ready_how: str = ""
    imports_s: list[float] = field(default_factory=list)  # Python's start and imports alone
    memory_warm: Memory | None = None
    memory_after: Memory | None = None
    kind: str = AESERVE
    error: str | None = None


@dataclass
class ModelResult:
    name: str
    dim: int
    train_command: str
    rows: list[Row]
    contention: list[Row] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    idle_busy: float | None = None  # share of the cores busy with every server up and idle
    memory: list[str] = field(default_factory=list)  # bench/memory.py's table: RSS, start-up


def _median_load(loads: list[Load]) -> Load:
    ordered = sorted(loads, key=lambda load: load.vectors_per_s)
    return ordered[(len(ordered) - 1) // 2]


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    middle = format(statistics.median(values), fmt)
    if len(values) == 1:
        return middle
    return f"{middle} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def ratios(row: Row | None, reference: Row | None) -> list[float]:
    """`row` over `reference`, round by round (rounds where either failed are left out)."""
    if row is None or reference is None:
        return []
    pairs = zip(row.loads, reference.loads, strict=False)
    return [a.vectors_per_s / b.vectors_per_s for a, b in pairs if a and b and b.vectors_per_s]


def find(
    rows: list[Row],
    kind: str,
    workload: str,
    budget: int | None = None,
    *,
    batching: bool | None = True,
    workers: int = 1,
) -> Row | None:
    for row in rows:
        if row.kind != kind or row.workload != workload or not row.measured:
            continue
        if budget is not None and row.budget != budget:
            continue
        if kind == AESERVE and (row.batching != batching or row.workers != workers):
            continue
        return row
    return None


def _reference(rows: list[Row], row: Row, kind: str) -> Row | None:
    return find(rows, kind, row.workload, row.budget)


def _budget(budget: int) -> str:
    return f"{budget} thread{'s' if budget > 1 else ''}"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "/").replace("\n", " ")[:400]


def table(rows: list[Row], workloads: list[Any]) -> list[str]:
    order = {w.key: i for i, w in enumerate(workloads)}
    lines = [
        "| workload | server | budget | vectors/s | requests/s | p50 ms | p99 ms | failed "
        "| × raw onnxruntime, same budget | × naive, same budget |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(
        rows, key=lambda r: (order.get(r.workload, 99), r.budget, _KIND_ORDER[r.kind], r.server)
    )
    for row in ordered:
        head = f"| {row.workload_label} | {row.server} | {_budget(row.budget)} |"
        if not row.measured:
            lines.append(f"{head} failed: {_cell(row.error)} | | | | | | |")
            continue
        middle = _median_load(row.measured)
        vs_raw = "–" if row.kind == RAW else _spread(ratios(row, _reference(rows, row, RAW)), ".2f")
        vs_naive = (
            "–"
            if row.kind in (RAW, NAIVE)
            else _spread(ratios(row, _reference(rows, row, NAIVE)), ".2f")
        )
        latency = "– | –" if row.kind == RAW else f"{middle.p50_ms:.2f} | {middle.p99_ms:.2f}"
        failed = sum(load.errors for load in row.measured) + row.loads.count(None)
        lines.append(
            f"{head} {_spread([x.vectors_per_s for x in row.measured], ',.0f')} | "
            f"{statistics.median(x.requests_per_s for x in row.measured):,.0f} | "
            f"{latency} | {failed} | {vs_raw} | {vs_naive} |"
        )
    return lines


def _memory(memory: Memory | None) -> str:
    if memory is None:
        return "–"
    if memory.processes == 1:
        return f"{memory.rss_mb:.0f} MB"
    return (
        f"{memory.rss_mb:.0f} MB in {memory.processes} processes "
        f"(largest {memory.largest_mb:.0f} MB)"
    )


def footprint_table(footprints: list[Footprint]) -> list[str]:
    lines = [
        "| server | budget | ready after start, s | how | of which Python's start and imports, s "
        "| RSS after warm-up | RSS after the run |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for f in footprints:
        if f.error:
            lines.append(f"| {f.server} | {_budget(f.budget)} | failed: {_cell(f.error)} | | | | |")
            continue
        lines.append(
            f"| {f.server} | {_budget(f.budget)} ({f.note}) | {_spread(f.ready_s, '.2f')} | "
            f"{f.ready_how} | {_spread(f.imports_s, '.2f')} | {_memory(f.memory_warm)} | "
            f"{_memory(f.memory_after)} |"
        )
    return lines


def scaling_table(rows: list[Row]) -> list[str]:
    one = find(rows, AESERVE, "c64", 1)
    ways = [
        ("`--workers 1`, batch_workers=1", one),
        ("`--workers 2`, batch_workers=1", find(rows, AESERVE, "c64", 2, workers=2)),
        ("`--workers 1`, batch_workers=2", find(rows, AESERVE, "c64", 2)),
    ]
    lines = [
        "| aeserve | budget | requests/s | × `--workers 1` | × raw onnxruntime, same budget |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in ways:
        if row is None:
            lines.append(f"| {name} | | not measured | | |")
            continue
        raw = _reference(rows, row, RAW)
        lines.append(
            f"| {name} | {_budget(row.budget)} | "
            f"{_spread([x.requests_per_s for x in row.measured], ',.0f')} | "
            f"{_spread(ratios(row, one), '.2f')} | {_spread(ratios(row, raw), '.2f')} |"
        )
    return lines


def _verdict(name: str, values: list[float], target: float, detail: str = "") -> str:
    if not values:
        return f"- {name}: not measured"
    median = statistics.median(values)
    verdict = "holds" if median >= target else "does not hold"
    return (
        f"- {name}: **{median:.2f}×** (rounds {min(values):.2f}–{max(values):.2f}; target ≥ "
        f"{target}×) — {verdict}{detail}"
    )


def best_peer(rows: list[Row], workload: str) -> tuple[Row | None, list[float]]:
    """The peer aeserve (one batch worker) leads by the least, and the ratios to it."""
    mine = find(rows, AESERVE, workload, 1)
    peers = [r for r in rows if r.kind == PEER and r.workload == workload and r.measured]
    scored = [(p, ratios(mine, p)) for p in peers]
    scored = [(p, values) for p, values in scored if values]
    if not scored:
        return None, []
    return min(scored, key=lambda pair: statistics.median(pair[1]))


def checks(result: ModelResult, budgets: list[int], training: Any) -> list[str]:
    rows = result.rows
    out = []
    for budget in budgets:
        same = f"{_budget(budget)} each"
        on, naive = find(rows, AESERVE, "b1", budget), find(rows, NAIVE, "b1", budget)
        out.append(_verdict(f"/score batch 1 JSON vs naive, {same}", ratios(on, naive), 3))
    for budget in budgets:
        on = find(result.contention, AESERVE, "b1", budget)
        naive = find(result.contention, NAIVE, "b1", budget)
        out.append(
            _verdict(
                f"the same with one core kept busy, {_budget(budget)} each",
                ratios(on, naive),
                2.5,
            )
        )
    for budget in budgets:
        on, naive = find(rows, AESERVE, "b64", budget), find(rows, NAIVE, "b64", budget)
        out.append(
            _verdict(f"/score batch 64 JSON vs naive, {_budget(budget)} each", ratios(on, naive), 4)
        )
    for workload in ("b1", "b64", "c64"):
        peer, values = best_peer(rows, workload)
        if peer is not None:
            out.append(
                _verdict(
                    f"{workload}: aeserve ahead of the closest peer ({peer.server}), "
                    "1 thread each, same rounds",
                    values,
                    1.5,
                )
            )
    for budget in budgets:
        npy = find(rows, AESERVE, "npy256", budget)
        out.append(
            _verdict(
                f"/score batch 256 .npy vs raw onnxruntime, {_budget(budget)} each",
                ratios(npy, _reference(rows, npy, RAW) if npy else None),
                0.6,
            )
        )
    top = max(budgets)
    on, off = find(rows, AESERVE, "c64", top), find(rows, AESERVE, "c64", top, batching=False)
    detail = (
        f" (p99 {_median_load(on.measured).p99_ms:.1f} ms on, "
        f"{_median_load(off.measured).p99_ms:.1f} ms off)"
        if on and off
        else ""
    )
    out.append(
        _verdict(
            f"64 clients at batch 1, batching on vs off, {_budget(top)} each",
            ratios(on, off),
            2,
            detail,
        )
    )
    for f in result.footprints:
        if f.kind == AESERVE and f.ready_how.startswith("/readyz") and f.ready_s:
            ready = statistics.median(f.ready_s)
            api = f.memory_warm.largest_mb if f.memory_warm else None
            out.append(
                f"- {f.server}: ready {ready:.2f} s after start (target ≤ 1 s) — "
                f"{'holds' if ready <= 1 else 'does not hold (where it goes: the table above)'}; "
                + (
                    f"RSS of the API process after warm-up {api:.0f} MB (target ≤ 150 MB) — "
                    f"{'holds' if api <= 150 else 'does not hold'}"
                    if api is not None
                    else "RSS not measured"
                )
            )
    if training is not None:
        out.append(
            f"- `aeserve train` samples/s vs the hand-written loop: **{training.ratio:.2f}×** "
            f"(target ≥ 0.9×) — {'holds' if training.ratio >= 0.9 else 'does not hold'}"
        )
    return out


def write_report(
    path: Path,
    started: datetime.datetime,
    commit: str,
    machine: str,
    results: list[ModelResult],
    training: Any,
    args: argparse.Namespace,
    workloads: list[Any],
    *,
    load_at_start: str = "",
    budgets: list[int] | None = None,
    fastlane: str | None = None,
    command: str = "make bench",
) -> None:
    budgets = budgets or [1, 2]
    kept_gpu = gpu_section(path.read_text()) if path.exists() else None
    rounds = getattr(args, "rounds", 0)
    lines = [
        "# Serving benchmark",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- commit: {commit}",
        f"- machine: {machine}",
        f"- load at start: {load_at_start or 'not recorded'}",
        f"- command: `{command}`",
        "- thread budget: the threads that may run onnxruntime at once, each session on one "
        "intra-op thread: raw onnxruntime's concurrent streams, aeserve's `batch_workers` (× "
        "`--workers`), the naive server's threadpool limit; the peers run one model instance. "
        "Every ratio is between rows of the same workload and the same budget, taken round by "
        "round; cells give the median of the rounds and (the range).",
        "- load: `wrk -t1 -cN -dS --timeout=10s -s SCRIPT URL`, each script POSTs one fixed body "
        f"(bench/load.py). Every contender, raw onnxruntime and the peers included, is measured "
        f"in {rounds} alternating rounds per workload (the order rotates each round), all servers "
        "up at once; raw onnxruntime runs in the benchmark's own process.",
        "- GPU: see the GPU section at the end (`python -m bench.gpu`, on a GPU machine)."
        if kept_gpu
        else "- GPU: not measured here; no GPU machine was lent to this work.",
        "",
    ]
    for result in results:
        lines += _model_section(result, workloads, budgets, training, first=result is results[0])
    if fastlane:
        lines += [
            "## Event-loop CPU per request (bench/fastlane.py)",
            "",
            "`python -m bench.fastlane`: the event-loop thread's CPU time per batch-1 /score "
            "request, the ASGI app called directly (no sockets), so a busy neighbour stretches "
            "it far less than throughput.",
            "",
            fastlane.strip(),
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


def _model_section(
    result: ModelResult, workloads: list[Any], budgets: list[int], training: Any, first: bool
) -> list[str]:
    lines = [
        f"## {result.name}: d = {result.dim}",
        "",
        f"Trained with `{result.train_command}`.",
        "",
        *table(result.rows, workloads),
        "",
    ]
    if result.idle_busy is not None:
        lines += [
            f"With every server up and idle, before the rounds, the cores were "
            f"{result.idle_busy:.0%} busy.",
            "",
        ]
    if result.contention:
        lines += [
            f"### {result.name} with one core kept busy",
            "",
            "A process spinning on one core throughout (bench/machine.py `busy_core`), the "
            "same rounds otherwise: how the edge holds under contention.",
            "",
            *table(result.contention, workloads),
            "",
        ]
    if any(r.workers > 1 for r in result.rows):
        lines += [
            f"### {result.name}: worker processes, batch 1 JSON, 64 clients",
            "",
            *scaling_table(result.rows),
            "",
        ]
    if result.footprints:
        lines += [
            f"### {result.name}: start-up and memory",
            "",
            "Ready: from starting the process to the first 200 on `/readyz` (aeserve, naive; "
            "beside it, how long a fresh Python takes to start and import the same modules), "
            "or to the first correct answer (peers: the start that served the rounds). RSS: "
            "resident memory of every process the server started, read from /proc, after a "
            "warm-up of every workload and after the rounds; one model loaded.",
            "",
            *footprint_table(result.footprints),
            "",
        ]
    if result.memory:
        lines += [
            f"#### {result.name}: where aeserve's RSS and start-up time go",
            "",
            "One more start of `aeserve serve` (batching on, 1 batch worker), the same command "
            "run by bench/memory_probe.py in the same process, which charges each imported "
            "package what the process grew and the seconds that passed while its modules ran "
            "(nested imports to their own packages; exact in sum, approximate for small "
            "packages), in the order the server imports them, then the app's build and the "
            "model's load; then the warm-up above, workload by workload. The probe's timing "
            "adds a little to the start, so its ready time is a little above the median above. "
            "RSS: VmRSS of /proc/PID/status. Pages of mapped files count "
            "once faulted in, and the kernel maps cached pages around each fault, so what the "
            "import of a large library (onnxruntime) adds varies from run to run by several MB "
            "with what the page cache holds.",
            "",
            *result.memory,
            "",
        ]
    if first:
        lines += [
            "### The issue's checks (this model)",
            "",
            *checks(result, budgets, training),
            "",
        ]
    return lines


def readme_summary(result: ModelResult, budgets: list[int], machine: str) -> str:
    """The README's table: the first model, each JSON workload at each budget."""
    rows = result.rows
    labels = {
        "b1": "batch 1, JSON, 8 clients",
        "b64": "batch 64, JSON, 8 clients",
        "c64": "batch 1, JSON, 64 clients",
        "npy256": "batch 256, `.npy`, 8 clients",
    }
    lines = [
        f"Vectors/s on {result.name} (d = {result.dim}), {machine}; median of the rounds, every "
        "ratio between rows of the same thread budget (threads that may run onnxruntime at once):",
        "",
        "| workload | budget | raw onnxruntime | naive FastAPI | closest peer | aeserve | × raw "
        "| × naive | × closest peer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def value(row: Row | None) -> str:
        if row is None:
            return "–"
        return f"{statistics.median(x.vectors_per_s for x in row.measured):,.0f}"

    def ratio(a: Row | None, b: Row | None) -> str:
        values = ratios(a, b)
        return f"{statistics.median(values):.2f}" if values else "–"

    for key, label in labels.items():
        for budget in budgets:
            mine = find(rows, AESERVE, key, budget)
            if mine is None:
                continue
            raw, naive = find(rows, RAW, key, budget), find(rows, NAIVE, key, budget)
            peer, _ = best_peer(rows, key) if budget == 1 else (None, [])
            peer_cell = f"{value(peer)} ({peer.server})" if peer else "–"
            lines.append(
                f"| {label} | {_budget(budget)} | {value(raw)} | {value(naive)} | {peer_cell} | "
                f"**{value(mine)}** | {ratio(mine, raw)} | {ratio(mine, naive)} | "
                f"{ratio(mine, peer)} |"
            )
    busy = []
    for b in budgets:
        on, naive = (
            find(result.contention, AESERVE, "b1", b),
            find(result.contention, NAIVE, "b1", b),
        )
        if on and naive:
            busy.append(f"{ratio(on, naive)}× the naive server at {_budget(b)}")
    one = find(rows, AESERVE, "c64", 1)
    two = find(rows, AESERVE, "c64", 2, workers=2)
    notes = []
    if busy:
        notes.append("With one core kept busy, batch 1 JSON stays at " + " and ".join(busy) + ".")
    if one and two:
        notes.append(
            f"`aeserve serve --workers 2` (one batch worker each) serves {ratio(two, one)}× "
            "the requests of `--workers 1` at batch 1 with 64 clients."
        )
    for f in result.footprints:
        if f.kind == AESERVE and f.ready_s and f.memory_warm:
            notes.append(
                f"{f.server}: ready {statistics.median(f.ready_s):.2f} s after start, "
                f"{f.memory_warm.largest_mb:.0f} MB resident after warm-up."
            )
            break
    for f in result.footprints:
        if f.kind == NAIVE and f.ready_s and f.memory_warm:
            notes.append(
                f"The naive server: {statistics.median(f.ready_s):.2f} s, "
                f"{f.memory_warm.largest_mb:.0f} MB."
            )
            break
    if notes:
        lines += ["", " ".join(notes)]
    return "\n".join(lines)


def replace_readme_summary(text: str, summary: str) -> str:
    """`text` with the part between the README markers replaced; unchanged without markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return text
    return text[: start + len(README_START)] + "\n" + summary + "\n" + text[end:]


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
