"""The API process's housekeeping thread: jobs whose worker is gone are ended here (never by a
read), and with retention settings old job records and unused datasets are removed."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from core.datasets import DatasetStore
from core.jobs.records import utc_now
from core.settings import Settings
from service.jobs.backend import JobBackend
from service.jobs.dataset_use import sweep_datasets

log = logging.getLogger("aeserve.jobs")

RETENTION_EVERY_S = 60.0
"""How often old job records and unused datasets are looked for."""


class Sweeper:
    def __init__(self, backend: JobBackend, datasets: DatasetStore, settings: Settings) -> None:
        self.backend = backend
        self.datasets = datasets
        self.job_retention_s = settings.job_retention_s
        self.dataset_retention_s = settings.dataset_retention_s
        # Lost jobs are noticed within a fraction of the heartbeat timeout.
        self.interval_s = min(1.0, settings.job_heartbeat_timeout_s / 5)
        self._retained_at = -RETENTION_EVERY_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sweep(self, *, retention: bool = True) -> None:
        """One pass: lost jobs always; with `retention`, old records and unused datasets."""
        now = utc_now()
        keep = self.job_retention_s
        removed = self.backend.sweep(now - timedelta(seconds=keep) if retention and keep else None)
        if removed:
            log.info("removed %d job record(s) finished over %s s ago", removed, keep)
        if retention and self.dataset_retention_s is not None:
            cutoff = now - timedelta(seconds=self.dataset_retention_s)
            sweep_datasets(self.backend, self.datasets, cutoff)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            retention = time.monotonic() - self._retained_at >= RETENTION_EVERY_S
            try:
                self.sweep(retention=retention)
            except Exception:  # the job store down for a moment: try again next time
                log.warning("job sweep failed", exc_info=True)
            if retention:
                self._retained_at = time.monotonic()
