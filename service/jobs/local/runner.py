"""One local training process: `python -m service.jobs.local.runner --db … --job …`.

Started by an API process's dispatcher. It reads its job from SQLite, trains here (torch is
imported in this process, never in the API process) and writes progress and the outcome back.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.jobs.datasets import DatasetStore
from service.jobs.local.store import JobStore
from service.jobs.training import Fate, JobHooks, run_job
from service.jobs.watchdog import Watchdog


class LocalHooks(JobHooks):
    def __init__(self, store: JobStore, job_id: str, watchdog: Watchdog) -> None:
        super().__init__(watchdog)
        self.store = store
        self.job_id = job_id

    def record_epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        self.store.record_epoch(self.job_id, epoch, epochs, train_loss, val_loss)

    def fate(self) -> Fate | None:
        return self.store.fate(self.job_id)

    def seal(self, fate: Fate) -> Fate | None:
        return self.store.seal(self.job_id, fate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the job records")
    parser.add_argument("--job", required=True, help="id of the job to run")
    parser.add_argument("--repository", type=Path, required=True, help="model repository")
    parser.add_argument("--data-dir", type=Path, required=True, help="dataset folder")
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="heartbeat interval")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    store = JobStore(args.db)
    watchdog = Watchdog(lambda: store.heartbeat(args.job), args.heartbeat_s)
    watchdog.start()
    try:
        hooks = LocalHooks(store, args.job, watchdog)
        outcome = run_job(store.spec(args.job), args.repository, DatasetStore(args.data_dir), hooks)
    finally:
        watchdog.stop()
    store.finish(args.job, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
