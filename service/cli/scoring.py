"""`aeserve score`: score a file offline, with onnxruntime through the service's own inference
layer (service/inference/loading.py and runtime.py), so the numbers are the server's, without
a server or HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from core import parquet
from core.data import load_table
from core.errors import NotFound
from core.repository import ModelRepository
from service.cli.options import RepositoryOption, repository_root
from service.cli.output import error_console, escape
from service.cli.training import _fail, _user_errors

if TYPE_CHECKING:
    from service.inference.runtime import ModelRuntime

OUTPUT_SUFFIXES = (".csv", ".parquet")


def score(
    data: Annotated[
        Path, typer.Argument(help="Rows to score: a .csv, .npy, .npz or .parquet file.")
    ],
    name: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(help="Version to score with.", show_default="the active one")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the scores to this .csv or .parquet file.",
            show_default="CSV on standard output",
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(min=0, help="Also give each row's K worst features, by name (0: none)."),
    ] = 0,
    threshold: Annotated[
        float | None,
        typer.Option(help="Flag scores above this.", show_default="the model's calibrated one"),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Rows per onnxruntime call.")
    ] = 8192,
    repository: RepositoryOption = None,
) -> None:
    """Score DATA with a model of the repository: score, anomaly flag and p-value per row (and
    the top features), computed here with onnxruntime, as the server would."""
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        _fail(f"--out {out}: use a .csv or .parquet file name")
    if out is not None and out.suffix.lower() == ".parquet" and not parquet.available():
        _fail(f"--out {out}: writing .parquet needs pyarrow: pip install 'aeserve[parquet]'")
    # onnxruntime, through the inference layer: this command's alone among the commands'.
    from service.inference.loading import load_runtime
    from service.inference.options import RuntimeOptions

    root = repository_root(repository)
    with _user_errors():
        store = ModelRepository(root)
        chosen = version if version is not None else store.active_version(name)
        if chosen is None:
            raise NotFound(f"model {name!r} has no active version in {root}; give --version")
        folder = store.verify(name, chosen)
        table = load_table(data)
        runtime = load_runtime(
            folder,
            RuntimeOptions(
                max_batch=batch_rows,
                dynamic_batching=False,
                batch_workers=1,
                max_queued_rows=None,
                request_timeout_s=None,
            ),
        )
        _warn_on_other_names(table.feature_names, runtime)
        columns = asyncio.run(_score_all(runtime, table.array, threshold, top, batch_rows))
    rows = len(table.array)
    anomalies = int(np.count_nonzero(columns["anomaly"]))
    error_console().print(
        f"scored {rows} rows of {escape(str(data))} with model {escape(name)!r} v{chosen} "
        f"from {escape(root)}: {anomalies} anomalies "
        f"(threshold {columns['threshold']:.4g})"
    )
    del columns["threshold"]
    if out is None:
        sys.stdout.write(_csv_text(columns))
        return
    if out.suffix.lower() == ".parquet":
        _write_parquet(columns, out)
    else:
        out.write_text(_csv_text(columns))
    error_console().print(f"written to {escape(str(out.resolve()))}")


async def _score_all(
    runtime: ModelRuntime, rows: np.ndarray, threshold: float | None, top: int, batch_rows: int
) -> dict[str, Any]:
    """Every row's score, flag and p-value (and top features), chunk by chunk; a bar on standard
    error for files of more than one chunk."""
    scores, flags, p_values, indices, errors = [], [], [], [], []
    applied = runtime.threshold if threshold is None else threshold
    with _bar(len(rows), shown=len(rows) > batch_rows) as advance:
        for start in range(0, len(rows), batch_rows):
            chunk = rows[start : start + batch_rows]
            result = await runtime.score_async(chunk, threshold, top=top or None)
            scores.append(result.scores)
            flags.append(result.anomalies)
            p_values.append(result.p_values)
            if result.top is not None:
                indices.append(result.top.indices)
                errors.append(result.top.errors)
            advance(len(chunk))
    columns: dict[str, Any] = {
        "row": np.arange(len(rows)),
        "score": np.concatenate(scores),
        "anomaly": np.concatenate(flags),
        "p_value": np.concatenate(p_values),
        "threshold": applied,
    }
    if indices:
        names = np.asarray(runtime.feature_names)
        top_indices, top_errors = np.concatenate(indices), np.concatenate(errors)
        for rank in range(top_indices.shape[1]):
            columns[f"top{rank + 1}_feature"] = names[top_indices[:, rank]]
            columns[f"top{rank + 1}_error"] = top_errors[:, rank]
    return columns


@contextlib.contextmanager
def _bar(total: int, shown: bool) -> Iterator[Any]:
    if not shown:
        yield lambda _: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeRemainingColumn(),
        console=error_console(),
    )
    with progress:
        task = progress.add_task("scoring", total=total)
        yield lambda n: progress.advance(task, n)


def _warn_on_other_names(names: list[str] | None, runtime: ModelRuntime) -> None:
    known = runtime.manifest.feature_names
    if names is not None and known is not None and names != known:
        error_console().print(
            f"[yellow]warning:[/yellow] the file's columns differ from the model's features "
            f"({escape(', '.join(known[:5]))}{', …' if len(known) > 5 else ''}); "
            "they are scored by position"
        )


def _csv_text(columns: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    values = [_cells(column) for column in columns.values()]
    writer.writerows(zip(*values, strict=True))
    return out.getvalue()


def _cells(column: np.ndarray) -> list[Any]:
    """Flags as 0/1; float32 as its shortest repr (0.3153, not 0.31530001759529114)."""
    if column.dtype == np.bool_:
        return list(column.astype(int).tolist())
    if column.dtype == np.float32:
        return list(column.astype(str).tolist())
    return list(column.tolist())


def _write_parquet(columns: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({name: np.asarray(values) for name, values in columns.items()}), path)
