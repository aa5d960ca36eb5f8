"""The local backend: each job in its own process, at most `max_concurrent_jobs` at once
across all API processes of this machine, the rest queued in submission order.

Every API process runs a dispatcher thread. Dispatchers share nothing but the SQLite file:
a job runs under the dispatcher that claimed it (one atomic UPDATE), which starts its training
process, beats for it while it lives, stops it when a client cancels it, and records a crash. A
running job whose dispatcher is gone (no heartbeat, or a dead pid on this machine: the server was
killed) is marked failed, "interrupted", by whichever dispatcher sees it first, at startup or
later.
"""

from __future__ import annotations

import builtins
import fcntl
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from pathlib import Path

from core.jobs.local_store import JobStore, RunningJob
from core.jobs.records import INTERRUPTED, JobRecord, JobSpec
from core.settings import Settings

log = logging.getLogger("aeserve.jobs")

TICK_S = 0.25
"""How often a dispatcher looks for finished processes, cancellations and free slots."""
TERMINATE_GRACE_S = 5.0
"""A cancelled training process gets SIGTERM, then SIGKILL after this long."""
SHUTDOWN_WAIT_S = 30.0
SHUTDOWN = "interrupted: the server shut down while the job was running; submit it again"

# Job processes fork from a server process that imported torch once, so a job starts in
# milliseconds instead of importing torch again; the API process itself never imports it.
# Without torch installed the preload fails quietly and each job fails saying torch is missing.
_PROCESSES = multiprocessing.get_context("forkserver")
TRAINING_ENTRY = "models.jobs.local_runner"
"""The module a job process runs: named, never imported here, so the API stays torch-free."""
_PRELOAD = [TRAINING_ENTRY, "models.pipeline"]


@dataclass
class _Child:
    process: BaseProcess
    terminated_at: float | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_message(exitcode: int) -> str:
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"interrupted: the training process was killed ({name}) before it finished"
    return (
        f"interrupted: the training process exited with status {exitcode} before it "
        "finished; the server log has the details"
    )


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        self.store = JobStore(settings.jobs_db_path)
        self._settings = settings.for_another_process()
        self._max_running = settings.max_concurrent_jobs
        self._heartbeat_timeout_s = settings.job_heartbeat_timeout_s
        self._host = socket.gethostname()
        # The token tells this process apart from an earlier one that had the same pid.
        self._owner = f"{self._host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._children: dict[str, _Child] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-dispatcher", daemon=True)

    # -- JobBackend -------------------------------------------------------------------------

    def start(self) -> None:
        _PROCESSES.set_forkserver_preload(_PRELOAD)
        self.store.initialise()
        self._recover(self.store.running())
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._stop_children()

    def submit(self, spec: JobSpec) -> JobRecord:
        record = self.store.insert(spec)
        self._wake.set()
        return record

    def get(self, job_id: str) -> JobRecord:
        return self.store.get(job_id)

    def list(self, limit: int) -> list[JobRecord]:
        return self.store.list(limit)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def cancel(self, job_id: str) -> JobRecord:
        record = self.store.request_cancel(job_id)
        # The dispatcher that owns the job (maybe in another API process) stops it within a tick;
        # DELETE /jobs/{id} waits for that (service/jobs/cancelling.py).
        self._wake.set()
        return record

    @contextmanager
    def dataset_lock(self, dataset: str) -> Iterator[None]:
        """One lock file beside the job database, shared by the API processes of this machine:
        it is held for a dataset check and one SQLite write, so one lock for all datasets is
        enough."""
        lock_path = self.store.path.with_name(self.store.path.name + ".datasets-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def unfinished_using(self, dataset: str) -> builtins.list[str]:
        return self.store.unfinished_using(dataset)

    def sweep(self, finished_before: datetime | None) -> int:
        """Remove old finished records; lost jobs are ended by the dispatcher, every tick."""
        if finished_before is None:
            return 0
        return self.store.remove_finished_before(finished_before)

    # -- dispatching ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # a locked or briefly unreadable database: try again next tick
                log.exception("job dispatcher tick failed")
            self._wake.wait(TICK_S)
            self._wake.clear()

    def _tick(self) -> None:
        self._reap()
        # Beating for the live processes of this dispatcher says both are alive.
        self.store.heartbeat(self._owner)
        running = self.store.running()
        self._stop_cancelled(running)
        self._recover(running)
        while not self._stopping.is_set():
            job_id = self.store.claim_next(self._owner, self._max_running)
            if job_id is None:
                break
            self._spawn(job_id)

    def _spawn(self, job_id: str) -> None:
        process = _PROCESSES.Process(
            target=_train_in_child,
            args=(self.store.path.resolve(), job_id, self._settings),
            name=f"aeserve-job-{job_id}",
            daemon=True,  # never outlives this process's interpreter
        )
        try:
            process.start()
        except OSError as exc:
            self.store.give_up(job_id, f"could not start a training process: {exc}")
            return
        assert process.pid is not None
        self._children[job_id] = _Child(process)
        self.store.set_pid(job_id, process.pid)
        log.info("job %s: training in process %d", job_id, process.pid)

    def _reap(self) -> None:
        for job_id, child in list(self._children.items()):
            exitcode = child.process.exitcode
            if exitcode is None:
                continue
            del self._children[job_id]
            child.process.close()
            # A process that ended normally has recorded its outcome; this covers crashes and
            # the SIGTERM of a cancellation (give_up makes that one `cancelled`).
            if self.store.give_up(job_id, exit_message(exitcode)):
                log.warning("job %s: %s", job_id, exit_message(exitcode))

    def _stop_cancelled(self, running: builtins.list[RunningJob]) -> None:
        now = time.monotonic()
        for job in running:
            child = self._children.get(job.job_id)
            if child is None or job.fate != "cancelled":
                continue
            if child.terminated_at is None:
                child.process.terminate()
                child.terminated_at = now
            elif now - child.terminated_at > TERMINATE_GRACE_S:
                child.process.kill()

    def _recover(self, running: builtins.list[RunningJob]) -> None:
        """Fail the jobs whose training process and dispatcher are gone."""
        for job in running:
            gone = job.job_id not in self._children and self._is_gone(job)
            if gone and self.store.give_up(job.job_id, INTERRUPTED):
                log.warning("job %s: %s", job.job_id, INTERRUPTED)

    def _is_gone(self, job: RunningJob) -> bool:
        if time.time() - job.heartbeat_at > self._heartbeat_timeout_s:
            return True
        # On this machine a dead owner says so at once, without waiting for the heartbeat.
        host, pid, _token = job.owner.rsplit(":", 2)
        return host == self._host and not _alive(int(pid))

    def _stop_children(self) -> None:
        """On shutdown: stop training processes (a publishing one may finish), record why."""
        fates = {job.job_id: job.fate for job in self.store.running()}
        for job_id, child in self._children.items():
            if fates.get(job_id) != "publishing":
                child.process.terminate()
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        for job_id, child in self._children.items():
            child.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.process.exitcode is None:
                child.process.kill()
                child.process.join()
            self.store.give_up(job_id, SHUTDOWN)
        self._children.clear()


def _train_in_child(db: Path, job_id: str, settings: Settings) -> None:
    """A job process's target: the training package is imported there, by name."""
    importlib.import_module(TRAINING_ENTRY).run(db, job_id, settings)
