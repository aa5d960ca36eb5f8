"""A child process dies with the API process that supervises it.

Used by a local training process and by the processes that parse large request bodies. A
training process's parent is not the API process but its forkserver, which lives on while any
process it forked does: so the child watches its supervisor itself (a pidfd, readable the moment
the supervisor exits, even by `kill -9`) and kills itself then; `PR_SET_PDEATHSIG` covers the
death of the parent. No job trains on, and none publishes a version, with no server supervising
it; no body parser outlives its server. The training watchdog's once-an-epoch check remains for
other systems.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import sys
import threading

log = logging.getLogger("aeserve")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with(supervisor: int | None) -> None:
    """Be killed (SIGKILL) as soon as this process's parent, or process `supervisor`, exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() == 1:  # the parent died before the request: no signal will come
        _die()
    if supervisor is None:
        return
    try:
        pidfd = os.pidfd_open(supervisor)
    except ProcessLookupError:
        _die()
    except OSError as exc:  # a kernel before 5.3: the watchdog's check alone
        log.warning("cannot watch process %d: %s", supervisor, exc)
        return
    watcher = threading.Thread(target=_die_when_readable, args=(pidfd,), daemon=True)
    watcher.name = f"watch-supervisor-{supervisor}"
    watcher.start()


def _die_when_readable(pidfd: int) -> None:
    select.select([pidfd], [], [])  # a pidfd turns readable when its process has exited
    _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
