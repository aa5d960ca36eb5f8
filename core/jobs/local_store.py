"""Job records in SQLite (WAL mode), shared by the API processes of one machine and by the
training processes they start. Every state change is one conditional UPDATE, so two processes
racing for the same job never both win."""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import Conflict, JobNotFound
from core.jobs.records import (
    EpochLoss,
    Fate,
    JobOutcome,
    JobProgress,
    JobRecord,
    JobSpec,
    utc_now,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order: the queue is FIFO
    job_id       TEXT NOT NULL UNIQUE,
    spec         TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    progress     TEXT NOT NULL,
    history      TEXT NOT NULL DEFAULT '[]',
    result       TEXT,
    error        TEXT,
    fate         TEXT,     -- cancelled | publishing | lost; set once (see training.Fate)
    owner        TEXT,     -- the dispatcher that claimed the job: host:pid:token
    pid          INTEGER,  -- its training process
    heartbeat_at REAL      -- time.time() when its dispatcher last saw it alive
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
"""


@dataclass(frozen=True)
class RunningJob:
    job_id: str
    owner: str
    pid: int | None
    heartbeat_at: float
    fate: Fate | None


def _record(row: sqlite3.Row) -> JobRecord:
    spec = JobSpec.model_validate_json(row["spec"])
    return JobRecord(
        job_id=row["job_id"],
        kind=spec.kind,
        name=spec.name,
        dataset=spec.dataset,
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress=JobProgress.model_validate_json(row["progress"]),
        history=[EpochLoss.model_validate(e) for e in json.loads(row["history"])],
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
    )


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per call: callers are threads and processes alike.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front: read-then-write steps are atomic."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def initialise(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return _record(row)

    def list(self, limit: int) -> list[JobRecord]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,))
            return [_record(row) for row in rows]

    def spec(self, job_id: str) -> JobSpec:
        with self._connect() as conn:
            row = conn.execute("SELECT spec FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return JobSpec.model_validate_json(row["spec"])

    def fate(self, job_id: str) -> Fate | None:
        with self._connect() as conn:
            row = conn.execute("SELECT fate FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else row["fate"]

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            rows = conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            return {row["status"]: row["n"] for row in rows}

    def unfinished_using(self, dataset: str) -> builtins.list[str]:
        """Ids of the queued and running jobs that read `dataset`."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT job_id FROM jobs WHERE status IN ('queued', 'running') "
                "AND json_extract(spec, '$.dataset') = ? ORDER BY seq",
                (dataset,),
            ).fetchall()
        return [row["job_id"] for row in rows]

    def running(self) -> builtins.list[RunningJob]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT job_id, owner, pid, heartbeat_at, fate FROM jobs WHERE status = 'running'"
            ).fetchall()
        return [RunningJob(**dict(row)) for row in rows]

    # -- writing ----------------------------------------------------------------------------

    def insert(self, spec: JobSpec) -> JobRecord:
        job_id = uuid.uuid4().hex
        progress = JobProgress(epochs=spec.epochs).model_dump_json()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, spec, status, created_at, progress) "
                "VALUES (?, ?, 'queued', ?, ?)",
                (job_id, spec.model_dump_json(), utc_now().isoformat(), progress),
            )
        return self.get(job_id)

    def claim_next(self, owner: str, max_running: int) -> str | None:
        """Move the oldest queued job to running for `owner`, unless `max_running` already run."""
        with self._transaction() as conn:
            (running,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running'"
            ).fetchone()
            if running >= max_running:
                return None
            row = conn.execute(
                "SELECT job_id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', owner = ?, started_at = ?, heartbeat_at = ? "
                "WHERE job_id = ? AND status = 'queued'",
                (owner, utc_now().isoformat(), time.time(), row["job_id"]),
            )
            job_id: str = row["job_id"]
            return job_id

    def set_pid(self, job_id: str, pid: int) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE jobs SET pid = ? WHERE job_id = ?", (pid, job_id))

    def heartbeat(self, owner: str) -> None:
        """Mark every running job of this dispatcher as alive."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE owner = ? AND status = 'running'",
                (time.time(), owner),
            )

    def record_epoch(
        self, job_id: str, epoch: int, epochs: int, train_loss: float, val_loss: float
    ) -> None:
        progress = JobProgress(epoch=epoch, epochs=epochs, train_loss=train_loss, val_loss=val_loss)
        entry = EpochLoss(epoch=epoch, train_loss=train_loss, val_loss=val_loss)
        with self._connect() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ?, history = json_insert(history, '$[#]', json(?)) "
                "WHERE job_id = ?",
                (progress.model_dump_json(), entry.model_dump_json(), job_id),
            )

    def seal(self, job_id: str, fate: Fate) -> Fate | None:
        """Set the job's fate unless it has one; return the fate that holds."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET fate = ? WHERE job_id = ? AND fate IS NULL", (fate, job_id)
            )
            row = conn.execute("SELECT fate FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else row["fate"]

    def finish(self, job_id: str, outcome: JobOutcome) -> bool:
        """Record how a job ended, unless it has ended already; True if this call recorded it."""
        result = outcome.result.model_dump_json() if outcome.result else None
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ? "
                "WHERE job_id = ? AND status IN ('queued', 'running')",
                (outcome.status, result, outcome.error, utc_now().isoformat(), job_id),
            )
            return cursor.rowcount == 1

    def give_up(self, job_id: str, error: str) -> bool:
        """End a running job whose process is gone: cancelled if a client asked, else failed.

        The fate `lost` tells a training process that is only slow, not gone, to stop.
        """
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET "
                "status = CASE fate WHEN 'cancelled' THEN 'cancelled' ELSE 'failed' END, "
                "error = CASE fate WHEN 'cancelled' THEN NULL ELSE ? END, "
                "finished_at = ?, fate = COALESCE(fate, 'lost') "
                "WHERE job_id = ? AND status = 'running'",
                (error, utc_now().isoformat(), job_id),
            )
            return cursor.rowcount == 1

    def remove_finished_before(self, cutoff: datetime) -> int:
        """Delete the records of jobs that finished before `cutoff`; how many went."""
        with self._connect() as conn:
            cursor = conn.execute(
                "DELETE FROM jobs WHERE finished_at < ? "
                "AND status IN ('succeeded', 'failed', 'cancelled')",
                (cutoff.astimezone(UTC).isoformat(),),
            )
            return cursor.rowcount

    def request_cancel(self, job_id: str) -> JobRecord:
        """Seal a queued or running job as cancelled; a queued one is cancelled at once."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT status, fate FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist")
            if row["status"] not in ("queued", "running"):
                raise Conflict(
                    f"job {job_id!r} has already finished ({row['status']}); "
                    "only queued or running jobs can be cancelled"
                )
            if row["fate"] == "publishing":
                raise Conflict(
                    f"job {job_id!r} is publishing its model and can no longer be cancelled"
                )
            conn.execute("UPDATE jobs SET fate = 'cancelled' WHERE job_id = ?", (job_id,))
            if row["status"] == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE job_id = ?",
                    (utc_now().isoformat(), job_id),
                )
        return self.get(job_id)
