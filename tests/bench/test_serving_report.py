"""The serving report: ratios round by round between rows of equal thread budget, and the
README summary written between its markers."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from bench.load import Load
from bench.machine import Memory, server_memory
from bench.report import (
    AESERVE,
    NAIVE,
    PEER,
    RAW,
    README_END,
    README_START,
    Footprint,
    ModelResult,
    Row,
    best_peer,
    find,
    ratios,
    readme_summary,
    replace_readme_summary,
    table,
    write_report,
)
from bench.serving import WORKLOADS, parse


def _loads(*vectors: float) -> list[Load | None]:
    return [Load(v, v, 1.0, 2.0, 0, "wrk") for v in vectors]


def _rows() -> list[Row]:
    def row(server: str, kind: str, budget: int, *vectors: float, **kw: object) -> Row:
        return Row(server, kind, budget, "b1", "batch 1", _loads(*vectors), **kw)  # type: ignore[arg-type]

    return [
        row("raw, 1 stream", RAW, 1, 10_000, 10_000, 10_000),
        row("raw, 2 streams", RAW, 2, 18_000, 18_000, 18_000),
        row("naive, 1 thread", NAIVE, 1, 1_000, 2_000, 1_000),
        row("naive, 2 threads", NAIVE, 2, 1_500, 1_500, 1_500),
        row("aeserve, 1", AESERVE, 1, 3_000, 4_000, 5_000, batching=True),
        row("aeserve, 2", AESERVE, 2, 6_000, 6_000, 3_000, batching=True),
        row("peer A", PEER, 1, 1_000, 1_000, 1_000),
        row("peer B", PEER, 1, 2_000, 2_000, 2_000),
    ]


def test_ratios_pair_rounds_and_rows_of_equal_budget() -> None:
    rows = _rows()
    mine = find(rows, AESERVE, "b1", 1)
    assert ratios(mine, find(rows, NAIVE, "b1", 1)) == [3.0, 2.0, 5.0]
    assert ratios(find(rows, AESERVE, "b1", 2), find(rows, NAIVE, "b1", 2)) == [4.0, 4.0, 2.0]
    text = "\n".join(table(rows, WORKLOADS))
    line = next(s for s in text.splitlines() if "| aeserve, 2 |" in s)
    # × raw against 2 streams, × naive against 2 threads, median and range of the rounds.
    assert "| 0.33 (0.17–0.33) | 4.00 (2.00–4.00) |" in line
    peer, values = best_peer(rows, "b1")
    assert peer is not None and peer.server == "peer B" and values == [1.5, 2.0, 2.5]


def test_a_failed_round_leaves_that_round_out() -> None:
    a = Row("a", AESERVE, 1, "b1", "batch 1", [*_loads(2.0), None, *_loads(6.0)])
    b = Row("b", NAIVE, 1, "b1", "batch 1", _loads(1.0, 1.0, 2.0))
    assert ratios(a, b) == [2.0, 3.0]


def test_the_report_and_the_readme_summary(tmp_path: Path) -> None:
    result = ModelResult("mnist784", 784, "aeserve train …", _rows())
    result.footprints = [
        Footprint(
            "aeserve, 1",
            1,
            "batch_workers=1",
            [0.8, 0.9, 1.0],
            "/readyz",
            [0.5],
            Memory(120.0, 1, 120.0),
            Memory(125.0, 1, 125.0),
        ),
    ]
    result.memory = [
        "| step | adds, MB | RSS after, MB |",
        "|---|---:|---:|",
        "| import x | 1.0 | |",
    ]
    path = tmp_path / "serving.md"
    args = argparse.Namespace(seconds=5.0, rounds=3)
    write_report(
        path,
        datetime.datetime(2026, 12, 1),
        "abc",
        "2 cores",
        [result],
        None,
        args,
        WORKLOADS,
        load_at_start="load average 0.1",
        budgets=[1, 2],
    )
    text = path.read_text()
    assert "- load at start: load average 0.1" in text
    memory = text.split("#### mnist784: where aeserve's RSS and start-up time go\n")[1]
    assert "| import x | 1.0 | |\n" in memory and "### mnist784: start-up and memory" in text
    assert "/score batch 1 JSON vs naive, 1 thread each: **3.00×** (rounds 2.00–5.00" in text
    assert "ready 0.90 s after start (target ≤ 1 s) — holds" in text
    summary = readme_summary(result, [1, 2], "2 cores")
    readme = f"intro\n{README_START}\nold table\n{README_END}\nafter\n"
    rewritten = replace_readme_summary(readme, summary)
    assert "old table" not in rewritten and rewritten.startswith("intro\n")
    assert rewritten.endswith(f"{README_END}\nafter\n") and "**4,000**" in rewritten
    assert replace_readme_summary("no markers", summary) == "no markers"


def test_quick_writes_aside_and_measures_one_and_two_threads() -> None:
    args = parse(["--quick", "--models", "mnist784", "--peers", "litserve"])
    assert args.output.name == "serving-quick.md" and args.rounds == 2
    assert args.models == ["mnist784"] and args.peers == ["litserve"]
    assert args.budgets == [1, 2]
    assert parse(["--no-peers"]).peers == []


def test_a_server_memory_counts_its_own_processes() -> None:
    import os

    memory = server_memory(os.getpid())
    assert memory is not None and memory.rss_mb > 10 and memory.processes >= 1
