"""The worker image's health check: `python -m models.jobs.health`.

Healthy means a Celery worker on this host answers a ping through the broker: the worker process
lives, its main loop runs (it answers while a job trains in a child process) and it can reach
Redis, so it can take the next job. Exit status 0 when one answers, 1 otherwise, with one line
saying which.
"""

from __future__ import annotations

import socket
import sys

from kombu.utils.url import maybe_sanitize_url

from core.jobs.celery_app import make_celery
from core.settings import Settings

TIMEOUT_S = 5.0


def ping_local_workers(broker_url: str, timeout_s: float = TIMEOUT_S) -> list[str]:
    """Names of the workers of this host (`…@<hostname>`, as `aeserve worker` names them) that
    answered a ping within `timeout_s`."""
    app = make_celery(broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)  # fail fast, no retry
            # Only this host's workers are asked, and the first answer ends the wait.
            replies = app.control.ping(
                connection=connection,
                timeout=timeout_s,
                pattern=f"*@{socket.gethostname()}",
                matcher="glob",
                limit=1,
            )
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)


def main() -> int:
    settings = Settings()
    try:
        answered = ping_local_workers(settings.broker_url)
    except Exception as exc:  # any broker failure is an unhealthy worker, said in one line
        broker = maybe_sanitize_url(settings.broker_url)
        print(f"unhealthy: cannot reach the broker {broker}: {exc}")
        return 1
    if not answered:
        print(f"unhealthy: no worker on {socket.gethostname()} answered a ping")
        return 1
    print(f"healthy: {', '.join(answered)} answered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
