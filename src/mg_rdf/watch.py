"""Watching a corpus folder while serving: each change becomes an incremental build.

A background thread looks at the entity and audit files' (size, mtime) every
``interval`` seconds; when they change it runs an incremental build into the
served store. The build swaps the store atomically, so readers see the old
build or the new one, never half of an edit; a build that fails (a broken file
under --strict, a full disk) leaves the served store as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .build import BuildMemory, build
from .problems import MgRdfError
from .source import AUDIT_ROOT, ENTITY_ROOT, FolderSource, markdown_entries
from .vocab import DataIris

log = logging.getLogger("mg_rdf.watch")


def folder_state(corpus: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every Markdown file the build reads."""
    out = {}
    for root in (ENTITY_ROOT, AUDIT_ROOT):
        for rel, entry in markdown_entries(str(corpus / root), root):
            try:
                st = entry.stat()
            except OSError:
                continue
            out[rel] = (st.st_size, st.st_mtime_ns)
    return out


class CorpusWatcher(threading.Thread):
    def __init__(self, corpus: Path, store: Path, iris: DataIris, *, interval: float = 1.0, strict: bool = False,
                 title: str | None = None, commit: str | None = None):
        super().__init__(name="mg-rdf-watch", daemon=True)
        self.corpus, self.store, self.iris = corpus, store, iris
        self.interval, self.strict, self.title, self.commit = interval, strict, title, commit
        self.stopping = threading.Event()
        self.builds = 0
        self.last_seconds: float | None = None
        self.last_swapped: float | None = None   # of the last build: seconds until it was current
        self.memory = BuildMemory()   # kept between builds (build.BuildMemory says when it is trusted)

    def run(self) -> None:
        state = folder_state(self.corpus)
        while not self.stopping.wait(self.interval):
            now = folder_state(self.corpus)
            if now == state:
                continue
            state = now
            self.rebuild()

    def rebuild(self) -> None:
        t0 = time.perf_counter()
        try:
            kwargs = {"title": self.title} if self.title else {}
            result = build(FolderSource(self.corpus, commit=self.commit), self.store, self.iris, strict=self.strict,
                           workers=1, memory=self.memory, **kwargs)
        except MgRdfError as e:
            log.warning("corpus change not applied: %s", e)
            return
        self.builds += 1
        self.last_seconds = time.perf_counter() - t0
        self.last_swapped = result.swapped
        a = result.analysis
        log.warning("applied a corpus change in %.3f s, serving it after %.3f s (%d entities re-read; "
                    "%d violations, %d warnings)", self.last_seconds, result.swapped or 0.0, result.rebuilt,
                    a.violations, a.warnings)

    def stop(self) -> None:
        self.stopping.set()
