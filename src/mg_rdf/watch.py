"""Watching a corpus folder while serving: each change becomes an incremental build.

A background thread looks at the entity and audit files' stats (source.folder_listing,
which the build then takes as its listing of the folder) as soon as the operating system
says a Markdown file or folder under them changed (watchdog: inotify on Linux), once
writes have been quiet for ``QUIET`` seconds, and in any case every ``interval`` seconds
(folders where notifications do not reach, such as network mounts, or a notification
lost); when the stats changed it runs an incremental build into the served store.
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
from .source import AUDIT_ROOT, ENTITY_ROOT, FolderSource, Listing, folder_listing
from .vocab import DataIris

log = logging.getLogger("mg_rdf.watch")

QUIET = 0.02        # seconds without a notification before a look: an editor's save is several writes
QUIET_AT_MOST = 0.5  # ... but a look at least this soon after the first one, however busy the folder


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
        self.changed = threading.Event()   # set by notifications (and by stop, to end the wait)
        self.watching = threading.Event()  # set once the folder is watched: changes from then on are seen
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
        observer = _notify_on_change(self.corpus, self.changed)
        self.watching.set()
        try:
            while True:
                self.changed.wait(self.interval)
                if self.stopping.is_set():
                    return
                if self.changed.is_set():
                    self._until_quiet()
                now = folder_listing(self.corpus)
                if now == state:
                    continue
                state = now
                self.rebuild(now)
        finally:
            if observer is not None:
                observer.stop()

    def _until_quiet(self) -> None:
        """Wait until no notification came for ``QUIET`` seconds (at most ``QUIET_AT_MOST``)."""
        end = time.monotonic() + QUIET_AT_MOST
        while self.changed.is_set() and not self.stopping.is_set() and time.monotonic() < end:
            self.changed.clear()
            time.sleep(QUIET)

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
        self.changed.set()


def _notify_on_change(corpus: Path, changed: threading.Event):
    """An observer (watchdog's, started) that sets ``changed`` when a ``.md`` file or a folder
    under the corpus's entity and audit folders is written, made, moved or removed, or when one
    of those folders appears or goes; None (with a warning: the interval's look still runs) when
    the system gives no notifications, e.g. inotify's limit on watches reached."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return   # reads, the build's own included
            paths = (event.src_path, getattr(event, "dest_path", "") or "")
            if event.is_directory or any(str(p).endswith(".md") for p in paths):
                changed.set()

    observer, handler = Observer(), Handler()
    try:
        observer.schedule(handler, str(corpus), recursive=False)
        for name in (ENTITY_ROOT, AUDIT_ROOT):
            if (corpus / name).is_dir():
                observer.schedule(handler, str(corpus / name), recursive=True)
        observer.start()
    except OSError as e:
        log.warning("no change notifications for %s (%s): looking at the interval only", corpus, e)
        try:
            observer.stop()
        except RuntimeError:
            pass
        return None
    return observer
