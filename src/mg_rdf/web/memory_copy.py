"""An in-memory copy of the current build, for the /sparql queries of one serving process.

pyoxigraph evaluates small lookups about twice as fast over its in-memory store as over
RocksDB (HEAD with audits, one thread: one entity's description 0.31 ms against 0.62, its
1-hop neighbours 0.47 against 1.11; see docs/DESIGN.md). A Python front end adds ~0.25 ms of
HTTP to every request, which Oxigraph's own server does not pay; answering from memory is
what brings those queries to its rate.

Each serving process makes its copy after it first queries a build, in a background thread:
Oxigraph writes the build out as N-Quads (the GIL released), and the quads are added in
batches (the GIL is taken ~50 ms at most at a time), so requests keep being answered from
the on-disk build meanwhile. The quads are parsed with their blank node labels kept (a load
would rename them), so the copy holds the same quads as the build, blank nodes included; only
the rows of a query without ORDER BY may come in another order than from disk (in the same
order in every process's copy). A newer build abandons the copy under way. Only builds whose database takes at most
``up_to_bytes`` on disk are copied: memory is ~1.5x that, in every serving process (HEAD
with its audits: 95 MB on disk, +145 MB resident).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from typing import Any

from pyoxigraph import RdfFormat, Store, parse

log = logging.getLogger(__name__)

BATCH = 10_000      # quads added to the copy per call (the GIL is held for one batch)


def database_bytes(build_dir: str) -> int:
    """The size of a build's database files."""
    return sum(e.stat().st_size for e in os.scandir(build_dir) if e.is_file())


class MemoryCopy:
    """The copy of one build (the last one asked for) in this process."""

    def __init__(self, up_to_bytes: int):
        self.up_to_bytes = up_to_bytes
        self._lock = threading.Lock()
        self._build: str | None = None    # the build copied, or being copied
        self._copy: Store | None = None   # its copy, once complete
        self._pid = os.getpid()
        self.filling: threading.Thread | None = None

    def of(self, snap: Any) -> Store:
        """The store to query for a snapshot (state.Snapshot) of the current build: the copy of
        its build if complete, else its store on disk. The first call for a build starts its
        copy if it is small enough, and abandons the copy of an earlier one; a pin's snapshot
        (``store_root`` set) is never copied."""
        disk = snap.store
        if snap.store_root is not None:
            return disk
        if self._pid != os.getpid():   # forked: the parent's copy and thread are not this process's
            self._pid, self._build, self._copy, self.filling = os.getpid(), None, None, None
        build = snap.version
        if self._build == build:
            copy = self._copy
            return copy if copy is not None else disk
        if self.up_to_bytes <= 0:
            return disk
        with self._lock:
            if self._build != build:
                self._build, self._copy = build, None
                try:
                    fits = database_bytes(str(snap.build_dir)) <= self.up_to_bytes
                except OSError:
                    fits = False
                if fits:
                    self.filling = threading.Thread(target=self._fill, args=(build, disk),
                                                    name="mg-rdf-memory-copy", daemon=True)
                    self.filling.start()
        return disk

    def _fill(self, build: str, disk: Store) -> None:
        try:
            data = disk.dump(format=RdfFormat.N_QUADS)
            copy = Store()
            quads = parse(data, format=RdfFormat.N_QUADS, lenient=True)   # Oxigraph's own output
            del data
            while self._build == build:
                batch = list(itertools.islice(quads, BATCH))
                if not batch:
                    break
                copy.extend(batch)
            with self._lock:
                if self._build == build:
                    self._copy = copy
        except Exception as e:  # noqa: BLE001 - the build may be gone; answers keep coming from disk
            log.warning("no in-memory copy of build %s: %s", build, e)
