"""Serving speed: aeserve against raw onnxruntime, a naive FastAPI server and peer servers.

    make bench          # python -m bench.serving; writes bench/results/serving.md

Everything is measured in one run on one machine, so ratios compare like with like: raw
onnxruntime in-process (the limit), then each server as one process with onnxruntime on one
thread, loaded by wrk (-t1) with a fixed POST body. aeserve and the naive server are measured
in alternating rounds (medians reported), so a neighbour's load hits both alike.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench import servers, training_speed
from bench.load import Load, ensure_wrk, run_wrk, write_script
from bench.prepare import ROOT, WORK, BenchModel, Bodies, bodies, models
from bench.report import RESULTS, Row, write_report

REPOSITORY = WORK / "repository"


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


def raw_onnxruntime(
    model: BenchModel, batches: dict[int, np.ndarray], seconds: float, rounds: int = 3
) -> dict[int, float]:
    """Vectors/s of `session.run` in this process, one thread, fetching the scores only.

    The best of a few short rounds: this is the limit, and a neighbour's load only lowers it.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])
    speed = dict.fromkeys(batches, 0.0)
    for _ in range(rounds):
        for n, x in batches.items():
            session.run(["scores"], {"x": x})  # warm-up
            runs, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / rounds:
                session.run(["scores"], {"x": x})
                runs += 1
            speed[n] = max(speed[n], runs * n / elapsed)
    return speed


def measure(
    server: servers.Server, scripts: dict[str, Path], workload: Workload, seconds: float
) -> Load:
    key = f"{workload.key}-{server.body}"
    return run_wrk(server.url, scripts[key], workload.rows, workload.connections, seconds)


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


def expected_scores(model: BenchModel, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model.onnx), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(["scores"], {"x": x})[0].reshape(-1)
    return result


def bench_model(
    model: BenchModel, args: argparse.Namespace, log_dir: Path
) -> tuple[list[Row], dict[int, float]]:
    all_bodies = {n: bodies(model, n) for n in (1, 64, 256)}
    raw = raw_onnxruntime(model, {n: b.rows for n, b in all_bodies.items()}, args.raw_seconds)
    scripts = scripts_for(model, all_bodies)
    expected = expected_scores(model, all_bodies[1].rows)
    rows: list[Row] = []

    # aeserve and naive up together, measured in alternating rounds.
    core = [
        servers.naive(model),
        servers.aeserve(model, REPOSITORY, True),
        servers.aeserve(model, REPOSITORY, False),
    ]
    with (
        servers.running(core[0], all_bodies[1].json, expected, log_dir / "naive.log"),
        servers.running(core[1], all_bodies[1].json, expected, log_dir / "aeserve-on.log"),
        servers.running(core[2], all_bodies[1].json, expected, log_dir / "aeserve-off.log"),
    ):
        for workload in WORKLOADS:
            takes: dict[str, list[Load]] = {s.label: [] for s in core}
            for _ in range(args.rounds):
                for server in core:
                    if workload.npy and server is core[0]:
                        continue  # the naive server takes JSON only
                    takes[server.label].append(measure(server, scripts, workload, args.seconds))
            for server in core:
                if takes[server.label]:
                    rows.append(
                        Row(
                            model.name,
                            server.label,
                            workload.key,
                            workload.label,
                            _median(takes[server.label]),
                            len(takes[server.label]),
                        )
                    )

    if args.peers and model.name in args.peer_models:
        for name in ("pytriton", "litserve", "bentoml", "rayserve"):
            for batching in (True, False):
                server = servers.peer(name, model, batching)
                rows.extend(
                    _bench_peer(model, server, all_bodies, expected, scripts, args, log_dir)
                )
    return rows, raw


def _bench_peer(model, server, all_bodies, expected, scripts, args, log_dir) -> list[Row]:
    body = all_bodies[1].v2 if server.body == "v2" else all_bodies[1].json
    log = log_dir / f"{server.label.replace(' ', '_').replace(',', '')}.log"
    if server.error:
        return [Row(model.name, server.label, "-", "-", None, 0, server.error)]
    out = []
    try:
        with servers.running(server, body, expected, log):
            for workload in WORKLOADS:
                if workload.npy:
                    continue
                try:
                    load, error = measure(server, scripts, workload, args.seconds), None
                except Exception as exc:  # a peer that breaks under load is a result too
                    load, error = None, str(exc)[:300]
                out.append(
                    Row(
                        model.name,
                        server.label,
                        workload.key,
                        workload.label,
                        load,
                        int(load is not None),
                        error,
                    )
                )
    except Exception as exc:
        out.append(Row(model.name, server.label, "-", "-", None, 0, str(exc)[:600]))
    return out


def _median(loads: list[Load]) -> Load:
    ordered = sorted(loads, key=lambda load: load.vectors_per_s)
    return ordered[len(ordered) // 2] if len(ordered) % 2 else ordered[len(ordered) // 2 - 1]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}; "
        f"load average at start {load}"
    )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds for aeserve and naive"
    )
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument(
        "--peer-models", default="mnist784", help="models the peers are measured on"
    )
    parser.add_argument("--no-training", dest="training", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    ensure_wrk()
    started = datetime.datetime.now(datetime.UTC)
    about = machine()
    log_dir = WORK / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    bench_models = models(REPOSITORY)
    results = []
    for model in bench_models:
        print(f"benchmarking {model.name} (d={model.dim})", flush=True)
        results.append((model, *bench_model(model, args, log_dir)))
    training = training_speed.run() if args.training else None
    write_report(args.output, started, commit(), about, results, training, args, WORKLOADS)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
