"""Watching a corpus folder while serving: each change becomes an incremental build.

A background thread looks at the entity and audit files' stats every ``interval``
seconds (source.folder_listing, which the build then takes as its listing of the
folder); when they change it runs an incremental build into the served store.
The build swaps the store atomically, so readers see the old build or the new
one, never half of an edit; a build that fails (a broken file under --strict, a
full disk) leaves the served store as it was. Between builds
the watcher keeps what the last one knew (build.BuildMemory: the manifest, the
entities made from it, a working copy of the database), starting from the
current build, so one edited entity is current ~0.1 s after it is noticed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

from .build import BuildMemory, build
from .problems import MgRdfError
from .source import FolderSource, Listing, folder_listing
from .vocab import DataIris

log = logging.getLogger("mg_rdf.watch")


def _settle() -> None:
    """Between builds (the watcher is idle): collect the garbage of the last build and set what is
    kept aside (``gc.freeze``), so that no full collection over it (~60-90 ms every few builds)
    lands in the middle of the next build; what was frozen before is collected again first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class CorpusWatcher(threading.Thread):
    def __init__(self, corpus: Path, store: Path, iris: DataIris, *, interval: float = 1.0, strict: bool = False,
                 title: str | None = None, commit: str | None = None, remember: bool = True):
        super().__init__(name="mg-rdf-watch", daemon=True)
        self.corpus, self.store, self.iris = corpus, store, iris
        self.interval, self.strict, self.title, self.commit = interval, strict, title, commit
        self.stopping = threading.Event()
        self.builds = 0
        self.last_seconds: float | None = None
        self.last_swapped: float | None = None   # seconds from noticing the last change to its build being current
        # what one build leaves for the next (build.BuildMemory says when it is trusted); not worth
        # making for a single build
        self.memory = BuildMemory() if remember else None

    def run(self) -> None:
        state = folder_listing(self.corpus)
        try:   # the store's current build as the starting point, so the first change is as quick as the next
            if self.memory is not None:
                self.memory.recall(self.store, self.source(), self.iris)
        except MgRdfError as e:
            log.warning("nothing remembered from the current build: %s", e)
        _settle()
        while not self.stopping.wait(self.interval):
            now = folder_listing(self.corpus)
            if now == state:
                continue
            state = now
            self.rebuild(now)

    def rebuild(self, listing: Listing | None = None) -> None:
        """Build the corpus into the store; ``listing``: the look at the folder that found the change."""
        t0 = time.perf_counter()
        try:
            kwargs = {"title": self.title} if self.title else {}
            result = build(self.source(listing), self.store, self.iris, strict=self.strict, workers=1,
                           memory=self.memory, **kwargs)
        except MgRdfError as e:
            log.warning("corpus change not applied: %s", e)
            return
        done = time.perf_counter()
        _settle()
        self.builds += 1
        self.last_seconds = done - t0
        # build() started a moment after t0 (the source is made first), at done - result.wall
        self.last_swapped = None if result.swapped is None else done - result.wall + result.swapped - t0
        a = result.analysis
        log.warning("applied a corpus change in %.3f s, current after %.3f s (%d entities re-read; "
                    "%d violations, %d warnings)", self.last_seconds, self.last_swapped or 0.0, result.rebuilt,
                    a.violations, a.warnings)

    def source(self, listing: Listing | None = None) -> FolderSource:
        return FolderSource(self.corpus, commit=self.commit, listing=listing)

    def stop(self) -> None:
        self.stopping.set()
