# mypy: disable-error-code="no-untyped-call"
"""Metrics that add up across worker processes (`aeserve serve --workers N`).

Each uvicorn worker has its own memory, so a scrape answered by one worker saw only that worker's
counters, and successive scrapes jumped between workers. prometheus_client's multiprocess mode
solves this with a file per process and metric type, which its `MultiProcessCollector` merges at
scrape: counters and histograms summed, gauges by their mode. Its own metrics write the file on
every `inc`; the bulk collectors (service/observability/bulk_metrics.py) keep their cheap
in-memory folding and write their totals instead. Totals are absolute, so writing them again is
harmless: a thread writes them every `FLUSH_S`, the scraping process right before it merges, and
each process once more as it exits. A scrape thus counts every request answered more than
`FLUSH_S` before it, by any worker, and no counter goes back.

The files are prometheus_client's own format and names (`counter_<pid>.db`, `histogram_<pid>.db`,
`gauge_livesum_<pid>.db`); a live gauge's file is left out once its process is gone.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.observability.bulk_metrics import BulkCounter, BulkHistogram

FLUSH_S = 0.25
"""How often each process writes its totals; a scrape may miss what the others answered since."""


def clear(directory: Path) -> None:
    """Remove the files of an earlier run, whose totals would otherwise be added to this one's."""
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


class SharedTotals:
    """This process's side: its totals written into its files, and a scrape merging everyone's."""

    def __init__(
        self,
        directory: Path,
        counters: Iterable[BulkCounter],
        histograms: Iterable[BulkHistogram],
        gauges: dict[str, tuple[str, Callable[[], float]]],
        expire: Callable[[], bool] = lambda: False,
    ) -> None:
        """`gauges`: name → (help, reader), summed over the live processes (`livesum`);
        `expire`, called before each write, forgets label sets and says whether it did."""
        self.directory = directory
        self.expire = expire
        self.counters = list(counters)
        self.histograms = list(histograms)
        self.gauges = gauges
        pid = os.getpid()
        directory.mkdir(parents=True, exist_ok=True)
        self._files = {
            kind: MmapedDict(str(directory / f"{kind}_{pid}.db"))
            for kind in ("counter", "histogram", "gauge_livesum")
        }
        self._writing = threading.Lock()  # an MmapedDict is not safe across threads
        self._closed = threading.Event()
        flushing = threading.Thread(target=self._keep_flushing, name="metrics-flush", daemon=True)
        flushing.start()
        atexit.register(self.close)

    def flush(self) -> None:
        with self._writing:
            if self._closed.is_set():
                return
            # An MmapedDict cannot delete a key: once label sets are forgotten, the totals go
            # into new files that replace the old ones whole, so a scrape never sees them partly.
            fresh = self._fresh_files() if self.expire() else {}
            counters = fresh.get("counter", self._files["counter"])
            histograms = fresh.get("histogram", self._files["histogram"])
            for counter in self.counters:
                for labels, total in counter.totals():
                    key = mmap_key(
                        counter.name,
                        f"{counter.name}_total",
                        counter.labelnames,
                        list(labels),
                        counter.documentation,
                    )
                    counters.write_value(key, total, 0.0)
            for histogram in self.histograms:
                names = [*histogram.labelnames, "le"]
                for labels, counts, total in histogram.totals():
                    for le, count in zip(histogram.les, counts.tolist(), strict=True):
                        key = mmap_key(
                            histogram.name,
                            f"{histogram.name}_bucket",
                            names,
                            [*labels, le],
                            histogram.documentation,
                        )
                        histograms.write_value(key, float(count), 0.0)
                    key = mmap_key(
                        histogram.name,
                        f"{histogram.name}_sum",
                        histogram.labelnames,
                        list(labels),
                        histogram.documentation,
                    )
                    histograms.write_value(key, total, 0.0)
            gauges = self._files["gauge_livesum"]
            for name, (documentation, read) in self.gauges.items():
                gauges.write_value(mmap_key(name, name, [], [], documentation), read(), 0.0)
            for kind, file in fresh.items():
                os.replace(self.directory / f"{kind}_{os.getpid()}.db.new", self._path(kind))
                self._files[kind].close()
                self._files[kind] = file

    def _path(self, kind: str) -> Path:
        return self.directory / f"{kind}_{os.getpid()}.db"

    def _fresh_files(self) -> dict[str, MmapedDict]:
        """Empty counter and histogram files beside this process's, not yet merged by scrapes
        (they end in `.new`, and only `*.db` is read)."""
        fresh = {}
        for kind in ("counter", "histogram"):
            path = self.directory / f"{kind}_{os.getpid()}.db.new"
            path.unlink(missing_ok=True)
            fresh[kind] = MmapedDict(str(path))
        return fresh

    def exposition(self) -> bytes:
        """Every process's totals, merged, in Prometheus' text format."""
        self.flush()
        merged = CollectorRegistry()
        merged.register(_LiveFiles(self.directory))
        return generate_latest(merged)

    def close(self) -> None:
        """A last flush; this process's live gauges leave the merge."""
        self.flush()
        with self._writing:
            if self._closed.is_set():
                return
            self._closed.set()
            for file in self._files.values():
                file.close()
            (self.directory / f"gauge_livesum_{os.getpid()}.db").unlink(missing_ok=True)

    def _keep_flushing(self) -> None:
        while not self._closed.wait(FLUSH_S):
            self.flush()


class _LiveFiles(Collector):
    """MultiProcessCollector over the folder, without the live gauges of processes gone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        files = [
            str(path)
            for path in self.directory.glob("*.db")
            if not path.name.startswith("gauge_live") or _alive(path.stem.rsplit("_", 1)[-1])
        ]
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-any-return]


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
