"""Anomaly-detection quality of the default training config against classical detectors.

The protocol of docs/quality.md: for each seed, split the normal rows of a data
set in half at random, fit every method on one half, score the other half together with every
anomaly, and report the ROC-AUC and the average precision of the scores (higher = more
anomalous), averaged over seeds.

aeserve is trained with `models.training.fit` and scored with the exported scoring graph's
PyTorch module, so the score is exactly what the service returns (the `score` of its config).

    python -m bench.quality                      # every data set, 3 seeds, every method
    python -m bench.quality --datasets 6_cardio,38_thyroid --seeds 1 --methods aeserve,knn
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/adbench"
"""Outside the repository: the whole collection is too large to keep in it."""
IN_REPOSITORY = REPO / "tests/data/adbench"
"""The two small sets the tests need (tests/data/README.md)."""
RESULTS = REPO / "bench/results/quality.md"
KNN_NEIGHBOURS = 5
KNN_MAX_TRAIN_ROWS = 50_000
"""kNN keeps a random subsample of this many training rows on the largest sets."""
PYOD_MAX_TRAIN_ROWS = 10_000
"""PyOD's AutoEncoder (batch 32, 10 epochs) costs about 0.7 ms per row and epoch on one core:
its whole training half of the largest sets would take over half an hour per seed."""
PCA_VARIANCE = 0.9
"""PCA keeps the components that explain this share of the standardized training variance."""

Scores = np.ndarray  # float [n_test], higher = more anomalous


@dataclass(frozen=True)
class Task:
    dataset: str
    seed: int
    method: str
    path: Path
    config: str  # JSON overrides of the aeserve TrainConfig, "{}" for the defaults


@dataclass(frozen=True)
class Outcome:
    dataset: str
    seed: int
    method: str
    auc: float
    ap: float
    seconds: float
    error: str = ""  # why the method failed on this seed (auc and ap are then NaN)


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as archive:
        return archive["X"].astype(np.float32), archive["y"].astype(int).ravel()


def split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: half the normal rows, then the other half and every anomaly."""
    normal = np.flatnonzero(y == 0)
    shuffled = np.random.default_rng(seed).permutation(normal)
    half = len(shuffled) // 2
    test = np.concatenate([shuffled[half:], np.flatnonzero(y == 1)])
    return np.sort(shuffled[:half]), test


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def subsample(rows: np.ndarray, most: int, seed: int) -> np.ndarray:
    """At most `most` rows, drawn at random without replacement; all of them if fewer."""
    if len(rows) <= most:
        return rows
    return rows[np.random.default_rng(seed).choice(len(rows), most, replace=False)]


def aeserve(train: np.ndarray, test: np.ndarray, seed: int, config: str) -> Scores:
    import torch

    from core.config import TrainConfig
    from models.graphs import ScoringGraph
    from models.training import fit

    overrides = json.loads(config)
    result = fit(train, TrainConfig(**{"seed": seed, "device": "cpu", **overrides}))
    graph = ScoringGraph(result.model, result.scaling, result.config.loss, result.latent).eval()
    scores = []
    with torch.no_grad():
        for start in range(0, len(test), 8192):
            scores.append(graph(torch.from_numpy(test[start : start + 8192]))[2].numpy())
    return np.concatenate(scores)


def isolation_forest(train: np.ndarray, test: np.ndarray, seed: int, config: str) -> Scores:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(random_state=seed).fit(train)
    return -forest.score_samples(test)


def pca(train: np.ndarray, test: np.ndarray, seed: int, config: str) -> Scores:
    from sklearn.decomposition import PCA

    train, test = standardize(train, test)
    model = PCA(n_components=PCA_VARIANCE, random_state=seed).fit(train)
    reconstructed = model.inverse_transform(model.transform(test))
    scores: Scores = ((test - reconstructed) ** 2).mean(axis=1)
    return scores


def knn(train: np.ndarray, test: np.ndarray, seed: int, config: str) -> Scores:
    """Distance to the k-th nearest training row, in standardized units."""
    from sklearn.neighbors import NearestNeighbors

    train, test = standardize(train, test)
    train = subsample(train, KNN_MAX_TRAIN_ROWS, seed)
    distances, _ = NearestNeighbors(n_neighbors=KNN_NEIGHBOURS).fit(train).kneighbors(test)
    scores: Scores = distances[:, -1]
    return scores


def pyod_autoencoder(train: np.ndarray, test: np.ndarray, seed: int, config: str) -> Scores:
    from pyod.models.auto_encoder import AutoEncoder

    train = subsample(train, PYOD_MAX_TRAIN_ROWS, seed)
    detector = AutoEncoder(random_state=seed, verbose=0, device="cpu").fit(train)
    scores: Scores = detector.decision_function(test)
    return scores


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, int, str], Scores]] = {
    "aeserve": aeserve,
    "iforest": isolation_forest,
    "pca": pca,
    "knn": knn,
    "pyod_ae": pyod_autoencoder,
}
LABELS = {
    "aeserve": "aeserve",
    "iforest": "IsolationForest",
    "pca": "PCA",
    "knn": "kNN (k=5)",
    "pyod_ae": "PyOD AE",
}


def run_task(task: Task, threads: int) -> Outcome:
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    torch.set_num_threads(threads)
    X, y = load(task.path)
    train_idx, test_idx = split(y, task.seed)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = METHODS[task.method](X[train_idx], X[test_idx], task.seed, task.config)
    except Exception as exc:  # a failure is a result to report, not the end of the run
        failed = f"{type(exc).__name__}: {exc}"
        return Outcome(task.dataset, task.seed, task.method, math.nan, math.nan, 0.0, failed)
    seconds = time.perf_counter() - started
    finite = np.finfo(np.float64).max
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=finite, posinf=finite)
    auc = float(roc_auc_score(y[test_idx], scores))
    ap = float(average_precision_score(y[test_idx], scores))
    return Outcome(task.dataset, task.seed, task.method, auc, ap, seconds)


def table(
    outcomes: list[Outcome], datasets: list[str], methods: list[str], metric: str = "auc"
) -> str:
    """Markdown: the mean `metric` (auc or ap) per data set and method over the seeds, the mean
    over the data sets, and the mean gap to kNN. A method that failed on a seed scores NaN."""
    auc: dict[tuple[str, str], list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for outcome in outcomes:
        auc.setdefault((outcome.dataset, outcome.method), []).append(getattr(outcome, metric))
        if outcome.method == "aeserve" and not outcome.error:
            seconds.setdefault(outcome.dataset, []).append(outcome.seconds)
    mean = {key: float(np.mean(values)) for key, values in auc.items()}
    timed = "aeserve" in methods
    header = ["data set", *(LABELS[m] for m in methods)] + (["aeserve s"] if timed else [])
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for dataset in datasets:
        cells = [f"{mean[(dataset, m)]:.3f}" for m in methods]
        if timed:
            cells.append(f"{np.mean(seconds.get(dataset, [math.nan])):.1f}")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    averages = {m: float(np.mean([mean[(d, m)] for d in datasets])) for m in methods}
    cells = [f"**{averages[m]:.3f}**" for m in methods] + ([""] if timed else [])
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    if "knn" in methods:
        cells = [f"{averages[m] - averages['knn']:+.3f}" for m in methods] + ([""] if timed else [])
        lines.append("| gap to kNN | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(outcomes: list[Outcome], datasets: list[str], methods: list[str]) -> str:
    """Failures, and aeserve's largest shortfall against the best other method on one set."""
    failed = [o for o in outcomes if o.error]
    lines = [f"- failures: {len(failed)} of {len(outcomes)} fits"]
    lines += [f"  - {o.dataset} seed {o.seed} {LABELS[o.method]}: {o.error}" for o in failed]
    others = [m for m in methods if m != "aeserve"]
    if "aeserve" in methods and others:
        auc: dict[tuple[str, str], list[float]] = {}
        for outcome in outcomes:
            auc.setdefault((outcome.dataset, outcome.method), []).append(outcome.auc)
        gaps = []
        for dataset in datasets:
            best = max(others, key=lambda m: float(np.mean(auc[(dataset, m)])))
            gap = float(np.mean(auc[(dataset, best)]) - np.mean(auc[(dataset, "aeserve")]))
            gaps.append((gap, dataset, best))
        gap, dataset, best = max(gaps)
        lines.append(
            f"- aeserve's largest ROC-AUC shortfall against the best other method on a set: "
            f"{gap:+.3f} on {dataset} ({LABELS[best]}); sets more than 0.10 below: "
            f"{sum(g > 0.10 for g, _, _ in gaps)}"
        )
    return "\n".join(lines)


def notes() -> str:
    return (
        "protocol: docs/quality.md. aeserve: the default TrainConfig (or the overrides above), "
        "fitted on "
        "the training half (of which it holds out 20 % for early stopping, as the service does); "
        "aeserve s: seconds per seed to train it and score the test rows (the scoring takes "
        "up to about 10 s on the sets of 300,000 test rows, under a second on most), one torch "
        "thread per job. "
        f"kNN: distance to the {KNN_NEIGHBOURS}th neighbour after standardizing, fitted on at "
        f"most {KNN_MAX_TRAIN_ROWS:,} training rows (a random subsample on the larger sets). "
        f"PCA: standardized, the components explaining {PCA_VARIANCE:.0%} of the variance, "
        "score = mean squared reconstruction error. IsolationForest: library defaults. "
        f"PyOD AutoEncoder: library defaults, fitted on at most {PYOD_MAX_TRAIN_ROWS:,} training "
        "rows (its full training half of the largest sets would take over half an hour per seed)."
    )


def machine() -> str:
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="comma-separated names (default: every .npz)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--config", default="{}", help="JSON overrides of aeserve's TrainConfig (default: none)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument("--raw", type=Path, help="also write every outcome as JSON lines here")
    return parser.parse_args(argv)


def missing_data_message(data: Path) -> str:
    return (
        f"bench.quality: no ADBench data (.npz files) in {data}. The full benchmark reads the 26 "
        f"data sets of ADBench's classical tabular collection from outside the repository: "
        f"put them in {DEFAULT_DATA} or set AESERVE_ADBENCH_DIR to their folder (docs/quality.md "
        f"says where they come from). The two sets kept for the tests run with "
        f"AESERVE_ADBENCH_DIR={IN_REPOSITORY.relative_to(REPO)}."
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = Path(os.environ.get("AESERVE_ADBENCH_DIR", DEFAULT_DATA))
    available = sorted(data.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    if not available:
        sys.exit(missing_data_message(data))
    datasets = args.datasets.split(",") if args.datasets else [p.stem for p in available]
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    json.loads(args.config)  # fail now, not in a worker
    tasks = [
        Task(name, seed, method, data / f"{name}.npz", args.config)
        for name in datasets
        for seed in range(args.seeds)
        for method in methods
    ]
    # Biggest files first so the slowest tasks do not start last.
    tasks.sort(key=lambda t: -t.path.stat().st_size)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_task, task, threads) for task in tasks]
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            print(
                f"{outcome.dataset} seed {outcome.seed} {outcome.method}: "
                f"ROC-AUC {outcome.auc:.4f} AP {outcome.ap:.4f} in {outcome.seconds:.1f} s"
                + (f" FAILED {outcome.error}" if outcome.error else ""),
                file=sys.stderr,
                flush=True,
            )
    markdown = "\n".join(
        [
            summary(outcomes, datasets, methods),
            "",
            "## ROC-AUC",
            "",
            table(outcomes, datasets, methods, "auc"),
            "",
            "## Average precision",
            "",
            table(outcomes, datasets, methods, "ap"),
        ]
    )
    print(markdown)
    command = "python -m bench.quality" + (f" {' '.join(sys.argv[1:])}" if argv is None else "")
    minutes = (time.perf_counter() - started) / 60
    header = [
        "# Anomaly-detection quality (ROC-AUC, average precision)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit()}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- seeds: {args.seeds}; aeserve config overrides: `{args.config}`; wall time "
        f"{minutes:.0f} min",
        f"- {notes()}",
    ]
    if args.raw:
        args.raw.write_text("".join(json.dumps(vars(o)) + "\n" for o in outcomes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join([*header, markdown]) + "\n")


if __name__ == "__main__":
    main()
