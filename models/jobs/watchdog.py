"""A training process's heartbeat, and its check that the process that started it still lives."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("aeserve.jobs")


class Watchdog:
    """Calls `beat()` every `interval_s` from a daemon thread while the parent process lives.

    Once the parent is gone (the API process or Celery's main worker process was killed), the
    beats stop so that others give the job up, and `orphaned` tells the training loop to end.
    Without `beat` (the local backend, whose dispatcher beats for its processes) it only watches.
    """

    def __init__(self, beat: Callable[[], None] | None, interval_s: float = 1.0) -> None:
        self._beat = beat
        self._interval_s = interval_s
        self._parent = os.getppid()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    @property
    def orphaned(self) -> bool:
        return os.getppid() != self._parent

    def start(self) -> None:
        if self._beat is not None:
            self._beat()
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        assert self._beat is not None
        while not self._stopped.wait(self._interval_s) and not self.orphaned:
            try:
                self._beat()
            except Exception:  # a store that is briefly unreachable must not end the training
                log.warning("job heartbeat failed", exc_info=True)
