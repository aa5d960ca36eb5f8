"""Serving speed: aeserve against raw onnxruntime, a naive FastAPI server and peer servers.

    make bench                                  # python -m bench.serving; bench/results/serving.md
    python -m bench.serving --quick             # a short pass over every code path, to .work
    python -m bench.serving --quick --models mnist784 --workloads b1 --peers litserve

Everything is measured in one run on one machine, like for like: every server is one process
(aeserve also with `--workers 2`) with onnxruntime sessions on one thread, and each row says its
thread budget, the threads that may run onnxruntime at once: raw onnxruntime in-process with 1
and with 2 concurrent streams, aeserve with `batch_workers` 1 (the default) and 2,
the naive server with its threadpool limited to the same, the peers with one model instance.
Every contender is measured in the same alternating rounds, and every ratio is taken round by
round between rows of equal budget (bench/report.py). Then the same with one core kept busy,
time to ready after start, resident memory and where aeserve's goes (bench/memory.py), and
bench/fastlane.py's event-loop CPU per request.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench import machine, memory, raw, servers, training_speed
from bench.load import Load, ensure_wrk, run_wrk, write_script
from bench.prepare import ROOT, WORK, BenchModel, Bodies, bodies, models
from bench.report import (
    AESERVE,
    NAIVE,
    PEER,
    RAW,
    README,
    RESULTS,
    Footprint,
    ModelResult,
    Row,
    readme_summary,
    replace_readme_summary,
    write_report,
)
from core.settings import Settings

REPOSITORY = WORK / "repository"
PEERS = ("pytriton", "litserve", "bentoml", "rayserve")
BUDGETS = sorted({1, 2, int(Settings.model_fields["batch_workers"].default)})
"""The thread budgets everything is measured at: 1 and 2, and aeserve's default `batch_workers`."""


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    rows: int
    connections: int
    npy: bool = False


WORKLOADS = [
    Workload("b1", "batch 1, JSON, 8 clients", 1, 8),
    Workload("b64", "batch 64, JSON, 8 clients", 64, 8),
    Workload("c64", "batch 1, JSON, 64 clients", 1, 64),
    Workload("npy256", "batch 256, .npy, 8 clients", 256, 8, npy=True),
]


@dataclass
class Contender:
    """Something measured in the rounds: raw onnxruntime streams, or a running server."""

    label: str
    kind: str
    budget: int
    streams: int = 0  # raw onnxruntime
    server: servers.Server | None = None
    only: set[str] | None = None  # the workloads it takes; None: every one its body allows
    error: str | None = None

    def takes(self, workload: Workload) -> bool:
        if self.only is not None and workload.key not in self.only:
            return False
        return not workload.npy or self.kind in (RAW, AESERVE)


@dataclass
class Bench:
    model: BenchModel
    args: argparse.Namespace
    log_dir: Path
    session: ort.InferenceSession
    all_bodies: dict[int, Bodies]
    scripts: dict[str, Path]
    expected: np.ndarray
    workloads: list[Workload]
    footprints: dict[str, Footprint] = field(default_factory=dict)

    def measure(self, contender: Contender, workload: Workload, seconds: float) -> Load:
        if contender.kind == RAW:
            x = self.all_bodies[workload.rows].rows
            seconds = min(seconds, self.args.raw_seconds)
            vectors = raw.vectors_per_s(self.session, x, contender.streams, seconds)
            return Load(vectors / workload.rows, vectors, 0.0, 0.0, 0, "in-process")
        server = contender.server
        assert server is not None
        key = f"{workload.key}-{server.body}"
        return run_wrk(server.url, self.scripts[key], workload.rows, workload.connections, seconds)

    def rounds(self, contenders: list[Contender]) -> list[Row]:
        """Each workload in `args.rounds` rounds; each round every contender once, in an order
        that rotates from round to round."""
        rows: list[Row] = []
        for workload in self.workloads:
            takers = [c for c in contenders if c.takes(workload) and c.error is None]
            found = {
                c.label: Row(
                    c.label,
                    c.kind,
                    c.budget,
                    workload.key,
                    workload.label,
                    workers=_workers(c),
                    batching=c.server.batching if c.server else None,
                )
                for c in takers
            }
            for i in range(self.args.rounds):
                shift = i % len(takers) if takers else 0
                for contender in takers[shift:] + takers[:shift]:
                    row = found[contender.label]
                    try:
                        row.loads.append(self.measure(contender, workload, self.args.seconds))
                    except Exception as exc:  # a server that breaks under load is a result too
                        row.loads.append(None)
                        row.error = str(exc)[:300]
            print(f"  {workload.key}: {self.args.rounds} rounds of {len(takers)}", flush=True)
            rows += found.values()
            rows += [
                Row(c.label, c.kind, c.budget, workload.key, workload.label, error=c.error)
                for c in contenders
                if c.takes(workload) and c.error is not None
            ]
        return rows

    def warm_up(self, contenders: list[Contender]) -> None:
        for contender in contenders:
            if contender.kind == RAW or contender.error:
                continue
            for workload in self.workloads:
                if contender.takes(workload):
                    try:
                        self.measure(contender, workload, self.args.warmup_seconds)
                    except Exception as exc:
                        contender.error = f"failed in the warm-up: {str(exc)[:300]}"

    def footprint(self, server: servers.Server, kind: str) -> Footprint:
        if server.label not in self.footprints:
            self.footprints[server.label] = Footprint(
                server.label, server.budget or 1, server.budget_note, kind=kind
            )
        return self.footprints[server.label]

    def record_memory(self, contenders: list[Contender], after: bool) -> None:
        for contender in contenders:
            server = contender.server
            if server is None or server.process is None:
                continue
            memory = machine.server_memory(server.process.pid)
            found = self.footprint(server, contender.kind)
            if after:
                found.memory_after = memory
            else:
                found.memory_warm = memory
                if not found.ready_s and server.ready_s is not None:
                    found.ready_s, found.ready_how = [server.ready_s], "first answer, 1 start"


def _workers(contender: Contender) -> int:
    if contender.server is None:
        return 1
    command = contender.server.command
    return int(command[command.index("--workers") + 1]) if "--workers" in command else 1


def one_model_repository(model: BenchModel) -> Path:
    """A repository holding `model` alone (a copy of its folder), so that a server loads one.
    The copy is kept while it holds the same active version, the same build of it (a retrained
    repository numbers its versions from 1 again)."""
    folder = WORK / "serving" / model.name
    source = REPOSITORY / model.name
    target = folder / model.name

    def active_manifest(root: Path) -> str:
        return (root / (root / "active").read_text().strip() / "manifest.json").read_text()

    if not target.exists() or active_manifest(source) != active_manifest(target):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copytree(source, target)
    return folder


def scripts_for(model: BenchModel, all_bodies: dict[int, Bodies]) -> dict[str, Path]:
    scripts = {}
    for w in WORKLOADS:
        b = all_bodies[w.rows]
        name = f"{model.name}-{w.key}"
        if w.npy:
            scripts[f"{w.key}-json"] = write_script(WORK, name, b.npy, "application/x-npy")
        else:
            scripts[f"{w.key}-json"] = write_script(WORK, name, b.json, "application/json")
            scripts[f"{w.key}-v2"] = write_script(WORK, f"{name}-v2", b.v2, "application/json")
    return scripts


def expected_scores(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    result: np.ndarray = session.run(["scores"], {"x": x})[0].reshape(-1)
    return result


def _log(log_dir: Path, label: str) -> Path:
    name = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
    return log_dir / f"{name}.log"


def readiness(bench: Bench, repository: Path) -> None:
    """Time to the first 200 on /readyz: aeserve and the naive server, alternating starts."""
    model = bench.model
    ways: list[tuple[str, Callable[[], servers.Server]]] = [
        (NAIVE, lambda: servers.naive(model, 1)),
        (AESERVE, lambda: servers.aeserve(model, repository, True, 1)),
    ]
    for budget in BUDGETS[1:]:
        ways.append((AESERVE, functools.partial(servers.aeserve, model, repository, True, budget)))
    for _ in range(bench.args.starts):
        for kind, make in ways:
            server = make()  # a fresh port each start
            found = bench.footprint(server, kind)
            found.ready_how = f"/readyz, median of {bench.args.starts} starts"
            try:
                log = _log(bench.log_dir, f"ready {server.label}")
                found.ready_s.append(servers.time_to_ready(server, log))
                found.imports_s.append(servers.start_and_import_s(server))
            except Exception as exc:
                found.error = str(exc)[:300]


def where_memory_goes(bench: Bench, repository: Path) -> list[str]:
    """bench/memory.py's table: aeserve's RSS import by import, then through the same warm-up
    as every server gets."""
    seconds = bench.args.warmup_seconds

    def step(workload: Workload) -> Callable[[str], object]:
        script = bench.scripts[f"{workload.key}-json"]
        return lambda url: run_wrk(url, script, workload.rows, workload.connections, seconds)

    warm_up = [(f"{w.label}, {seconds:g} s", step(w)) for w in bench.workloads]
    try:
        return memory.measure(bench.model, repository, warm_up, bench.log_dir)
    except Exception as exc:  # the rest of the benchmark stands without it
        return [f"Not measured: {str(exc)[:300]}"]


def bench_model(model: BenchModel, args: argparse.Namespace, log_dir: Path) -> ModelResult:
    all_bodies = {n: bodies(model, n) for n in (1, 64, 256)}
    session = raw.open_session(model.onnx)
    workloads = [w for w in WORKLOADS if args.workloads is None or w.key in args.workloads]
    bench = Bench(
        model,
        args,
        log_dir,
        session,
        all_bodies,
        scripts_for(model, all_bodies),
        expected_scores(session, all_bodies[1].rows),
        workloads,
    )
    repository = one_model_repository(model)
    if args.starts:
        readiness(bench, repository)
    breakdown = where_memory_goes(bench, repository)  # before the other servers start

    contenders = []
    for budget in args.budgets:
        contenders.append(
            Contender(f"raw onnxruntime, {budget} stream" + "s" * (budget > 1), RAW, budget, budget)
        )
    for budget in args.budgets:
        contenders.append(_serving(servers.naive(model, budget), NAIVE))
    for budget in args.budgets:
        contenders.append(_serving(servers.aeserve(model, repository, True, budget), AESERVE))
    top = max(args.budgets)
    contenders.append(_serving(servers.aeserve(model, repository, False, top), AESERVE))
    if args.scaling and any(w.key == "c64" for w in workloads):
        two = _serving(servers.aeserve(model, repository, True, 1, workers=2), AESERVE)
        two.only = {"c64"}
        contenders.append(two)
    if model.name in args.peer_models:
        for name in args.peers:
            for batching in (True, False):
                contenders.append(_serving(servers.peer(name, model, batching), PEER))

    with ExitStack() as stack:
        for contender in contenders:
            server = contender.server
            if server is None or server.error:
                contender.error = server.error if server else None
                continue
            body = all_bodies[1].v2 if server.body == "v2" else all_bodies[1].json
            try:
                stack.enter_context(
                    servers.running(server, body, bench.expected, _log(log_dir, server.label))
                )
            except Exception as exc:
                contender.error = f"did not start: {str(exc)[:500]}"
            print(
                f"  {server.label}: {'up' if not contender.error else contender.error[:80]}",
                flush=True,
            )
        bench.warm_up(contenders)
        bench.record_memory(contenders, after=False)
        idle_busy = machine.cpu_busy(2.0)
        rows = bench.rounds(contenders)
        bench.record_memory(contenders, after=True)
        contention: list[Row] = []
        if args.contention and model.name in args.peer_models:
            busy = [c for c in contenders if c.kind in (RAW, NAIVE) or _plain_aeserve(c)]
            contended = replace(bench, workloads=[w for w in workloads if w.key == "b1"])
            with machine.busy_core():
                contention = contended.rounds(busy)
    for contender in contenders:
        if contender.error and contender.server and contender.kind != RAW:
            found = bench.footprint(contender.server, contender.kind)
            found.error = found.error or contender.error
    return ModelResult(
        model.name,
        model.dim,
        model.train_command,
        rows,
        contention,
        list(bench.footprints.values()),
        idle_busy,
        breakdown,
    )


def _serving(server: servers.Server, kind: str) -> Contender:
    return Contender(server.label, kind, server.budget or 1, server=server, error=server.error)


def _plain_aeserve(contender: Contender) -> bool:
    server = contender.server
    return (
        contender.kind == AESERVE
        and server is not None
        and bool(server.batching)
        and _workers(contender) == 1
    )


def fastlane_table() -> str | None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fastlane"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        return f"`python -m bench.fastlane` failed: {done.stderr.strip()[-400:]}"
    return done.stdout


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload")
    parser.add_argument(
        "--raw-seconds", type=float, default=2.0, help="raw onnxruntime, per measurement"
    )
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--starts", type=int, default=5, help="starts timed to /readyz (0: none)")
    parser.add_argument("--models", type=_names, default=None, help="e.g. mnist784 (default: all)")
    parser.add_argument("--workloads", type=_names, default=None, help="e.g. b1,c64 (default: all)")
    parser.add_argument("--peers", type=_names, default=list(PEERS), help=",".join(PEERS))
    parser.add_argument("--no-peers", dest="peers", action="store_const", const=[])
    parser.add_argument(
        "--peer-models", type=_names, default=["mnist784"], help="models the peers run on"
    )
    parser.add_argument("--no-contention", dest="contention", action="store_false")
    parser.add_argument("--no-scaling", dest="scaling", action="store_false")
    parser.add_argument("--no-fastlane", dest="fastlane", action="store_false")
    parser.add_argument("--no-training", dest="training", action="store_false")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every code path, briefly: 1 s measurements, 2 rounds, 2 starts, no training; "
        "writes bench/.work/serving-quick.md and leaves the README alone",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.raw_seconds = 1.0, 2, 1.0
        args.warmup_seconds, args.starts, args.training = 1.0, min(args.starts, 2), False
    args.output = args.output or (WORK / "serving-quick.md" if args.quick else RESULTS)
    args.budgets = BUDGETS
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    ensure_wrk()
    started = datetime.datetime.now(datetime.UTC)
    wall = time.monotonic()
    load_at_start = machine.load_now()
    print(f"load at start: {load_at_start}", flush=True)
    log_dir = WORK / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    bench_models = [m for m in models(REPOSITORY) if args.models is None or m.name in args.models]
    results = []
    for model in bench_models:
        print(f"benchmarking {model.name} (d={model.dim})", flush=True)
        results.append(bench_model(model, args, log_dir))
    fastlane = fastlane_table() if args.fastlane else None
    training = training_speed.run() if args.training else None
    command = "python -m bench.serving " + shlex.join(sys.argv[1:] if argv is None else argv)
    workloads = [w for w in WORKLOADS if args.workloads is None or w.key in args.workloads]
    write_report(
        args.output,
        started,
        commit(),
        machine.describe(),
        results,
        training,
        args,
        workloads,
        load_at_start=load_at_start,
        budgets=args.budgets,
        fastlane=fastlane,
        command=command.strip() if argv or sys.argv[1:] else "make bench",
    )
    print(f"wrote {args.output} in {(time.monotonic() - wall) / 60:.1f} min")
    if args.output == RESULTS and results:
        summary = readme_summary(results[0], args.budgets, machine.describe())
        README.write_text(replace_readme_summary(README.read_text(), summary))
        print(f"updated {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
