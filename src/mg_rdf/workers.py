"""Forked worker processes for the build (SHACL, audits): started while the parent holds the
job in a module global (the fork hands it over, nothing is pickled), killed with the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this worker when its parent dies (a killed build leaves no orphans).
    ``parent``: the pid that started the worker; if it is already gone, exit now."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:   # it died before the line above
        os._exit(1)


def forked_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` forked processes. With the fork context they all start at the
    first submit, so a job global set before it can be cleared right after."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: its processes killed, pending work dropped."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
