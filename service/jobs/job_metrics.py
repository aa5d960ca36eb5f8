"""The `aeserve_jobs` gauge, read from the backend when /metrics is scraped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Gauge

from core.jobs.records import STATUSES
from service.jobs.backend import JobBackend

log = logging.getLogger("aeserve.jobs")

MAX_AGE_S = 1.0
"""One scrape reads the gauge once per status; the counts are fetched once for all of them."""


class JobCounts:
    def __init__(self, backend: JobBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._read_at = -MAX_AGE_S

    def reader(self, status: str) -> Callable[[], float]:
        return lambda: self.of(status)

    def of(self, status: str) -> float:
        with self._lock:
            if time.monotonic() - self._read_at >= MAX_AGE_S:
                try:
                    self._counts = self._backend.counts()
                except Exception:  # the job store down must not break /metrics
                    log.warning("could not count jobs", exc_info=True)
                self._read_at = time.monotonic()
            return float(self._counts.get(status, 0))


def watch_job_counts(gauge: Gauge, backend: JobBackend) -> None:
    counts = JobCounts(backend)
    for status in STATUSES:
        gauge.labels(status).set_function(counts.reader(status))
