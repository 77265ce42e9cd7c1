"""The Oxigraph store on disk, and swapping a new build in atomically.

Layout of a store path::

    STORE/current        symlink -> builds/<build-id>  (what readers open)
    STORE/builds/<id>/   a complete Oxigraph store
    STORE/builds/<id>.manifest  what the build read from each file (for the next build)
    STORE/builds/<id>.pins/      the build's other pins, one Oxigraph dir each (see pins.py)
    STORE/sources/       every entity file a kept build read, by content (source_packs.py)
    STORE/builds/.tmp-*  a build in progress (removed by the next build if left behind)
    STORE/builds/.work-*/  a watching server's working copy (see WorkingCopy)
    STORE/lock           held by a running build

A build writes a new Oxigraph directory and only when it is complete renames it
into ``builds/`` and replaces the ``current`` symlink with ``os.replace`` (an
atomic rename). A build of several pins writes every pin before that rename, so
the pins of one build become current together. A build that fails or is killed at
any point leaves ``current`` pointing at the previous, intact store. Readers hold the directory they opened;
the previous build is kept so a reader that opened it keeps working.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyoxigraph import Quad, RdfFormat, Store

from . import source_packs
from .problems import MgRdfError

KEEP_BUILDS = 2


def default_store_path() -> Path:
    env = os.environ.get("MG_RDF_STORE")
    if env:
        return Path(env)
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data / "mg-rdf" / "store"


def current_build(path: Path) -> Path | None:
    """The directory of the build readers should open, or None if there is none."""
    link = path / "current"
    if not link.is_symlink():
        return None
    target = (path / os.readlink(link)).resolve()
    return target if target.is_dir() else None


def open_read_only(path: Path | str) -> Store:
    """The current build of a store directory, read-only; or a remote SPARQL store by URL."""
    if isinstance(path, str) and path.startswith(("http://", "https://")):
        from .remote import RemoteStore

        return RemoteStore(path)  # type: ignore[return-value]
    build = current_build(path)
    if build is None:
        raise MgRdfError(f"{path}: no store has been built here yet (run `mg-rdf build`)")
    try:
        return Store.read_only(str(build))
    except OSError as e:
        raise MgRdfError(f"{build}: cannot open the store ({e})") from e


LOCK_WAIT = 10.0   # seconds a build waits for the lock before saying another build holds it

_held_locks: set[int] = set()   # fds of build locks this process holds


def _close_locks_in_child() -> None:
    # A forked worker (SHACL, audits) must not keep the store's build lock alive: a flock
    # belongs to the open file, so a worker outliving a killed build would block the next one.
    for fd in list(_held_locks):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold the store's build lock (waiting up to LOCK_WAIT for another build to finish)."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "lock", "w") as fh:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # a build killed a moment ago may still be letting go of it
                if time.monotonic() > deadline:
                    raise MgRdfError(f"{path}: another build is running on this store") from None
                time.sleep(0.1)
        _held_locks.add(fh.fileno())
        try:
            yield
        finally:
            _held_locks.discard(fh.fileno())


class WorkingCopy:
    """A private read-write copy of a build, kept open by a long-running builder (``serve
    --watch``) between its builds (``builds/.work-<pid>-<n>/db``; readers never open it).

    An incremental build changes it and checkpoints it into the new build's directory (hard
    links, ~5 ms) instead of checkpointing the previous build and opening the copy (~50-120
    ms: a read-only open, the checkpoint, a read-write open). Its directory holds a lock
    (``owner``) for as long as the copy is open, so that a build of another process removes
    it only once its owner is gone (``new_build``)."""

    def __init__(self, builds: Path, build: Path):
        self.directory = builds / f".work-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.store: Store | None = None
        self._owner: int | None = None
        try:
            self.directory.mkdir(parents=True)
            self._owner = os.open(self.directory / "owner", os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _held_locks.add(self._owner)
            Store.read_only(str(build)).backup(str(self.directory / "db"))
            self.store = Store(str(self.directory / "db"))
        except OSError as e:
            self.close()
            raise _disk_error(self.directory, e) from e

    def close(self) -> None:
        """Let go of the copy and remove it."""
        self.store = None
        if self._owner is not None:
            _held_locks.discard(self._owner)
            os.close(self._owner)
            self._owner = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _remove_abandoned_copies(builds: Path) -> None:
    """Remove the working copies whose owner is gone (its lock is free)."""
    for copy in builds.glob(".work-*"):
        try:
            fd = os.open(copy / "owner", os.O_RDWR)
        except OSError:
            shutil.rmtree(copy, ignore_errors=True)   # its owner died before taking the lock
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue   # a live builder's
        finally:
            os.close(fd)
        shutil.rmtree(copy, ignore_errors=True)


class StoreWriter:
    """One Oxigraph database being written: a fresh one, a copy of an earlier one, or a working
    copy checkpointed into it when complete (``open_working``, ``seal``)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.store: Store | None = None
        self.working: WorkingCopy | None = None
        self.sealed = False
        # called just before the flush: Oxigraph lets go of the GIL while it flushes (see commit)
        self.while_flushing: Callable[[], None] | None = None
        # writes into a fresh database: one bulk load leaves it compact, a second one does not
        self.writes = 0

    def open(self) -> Store:
        self.directory.mkdir(parents=True)
        self.store = Store(str(self.directory))
        return self.store

    def open_copy(self, previous: Path) -> Store:
        """Start from a copy of a previous build: RocksDB checkpoints hard-link the data
        files, so this takes milliseconds, and the previous build stays untouched."""
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            Store.read_only(str(previous)).backup(str(self.directory))
            self.store = Store(str(self.directory))
        except OSError as e:
            raise _disk_error(self.directory, e) from e
        return self.store

    def open_working(self, copy: WorkingCopy) -> Store:
        """Write into ``copy`` (a copy of the previous build); ``seal`` makes this database of it."""
        assert copy.store is not None
        self.working, self.store = copy, copy.store
        return self.store

    def seal(self) -> None:
        """The database is complete: a working copy is flushed and checkpointed into this
        writer's directory (which it creates); nothing more may be written. For a database
        written in place, nothing (``close`` flushes it)."""
        if self.working is None or self.sealed:
            return
        assert self.store is not None
        try:
            self._flushing()
            self.store.flush()
            self.store.backup(str(self.directory))
        except OSError as e:
            raise _disk_error(self.directory, e) from e
        self.sealed = True

    def _flushing(self) -> None:
        if self.while_flushing is not None:
            self.while_flushing()

    def load(self, quads: Iterable[Quad]) -> None:
        assert self.store is not None
        self.writes += 1
        try:
            self.store.bulk_extend(quads)
        except OSError as e:
            raise _disk_error(self.directory, e) from e

    def load_nquads(self, data: bytes) -> None:
        """Bulk-load N-Quads bytes (parsed by Oxigraph, no Python object per quad) that Oxigraph
        wrote from terms it had already checked: its parser is told not to check the IRIs again
        (``lenient``). Blank nodes get new labels in such a load: ``load`` keeps theirs."""
        assert self.store is not None
        if not data:
            return
        self.writes += 1
        try:
            self.store.bulk_load(data, format=RdfFormat.N_QUADS, lenient=True)
        except OSError as e:
            raise _disk_error(self.directory, e) from e

    def close(self, optimize: bool = True) -> None:
        """Flush (and compact) the database and let go of it (a working copy stays open)."""
        if self.store is None:
            return
        if self.working is not None:
            self.seal()
            self.store = None
            return
        try:
            self._flushing()
            self.store.flush()
            # Compaction pays off for a full load, not for a few replaced graphs; and not after a
            # single bulk load, whose SST files do not overlap: then it has nothing to merge, and
            # lookups are as fast as after it (10x corpus: 4.0 s of compaction after a second
            # load of 0.1 % of the quads; lookups 20-40 % slower without it; see DESIGN.md)
            if optimize and self.writes > 1:
                self.store.optimize()
        except OSError as e:
            raise _disk_error(self.directory, e) from e
        self.store = None


class NewBuild:
    """A store being built: write quads, then ``commit()`` to swap it in, or ``abort()``.

    ``open``/``open_copy``/``load`` write the current pin (``builds/<id>``); ``pin(key)``
    gives a writer for another pin of the same build (``builds/<id>.pins/<key>``)."""

    def __init__(self, path: Path):
        self.path = path
        # sortable by time (to the microsecond: a watching server builds several times a second, and
        # old builds are collected newest first by name), unique even for two builds at one instant
        now = time.time_ns()
        self.build_id = (time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f"{now // 1000 % 10**6:06d}"
                         + f"-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.tmp = path / "builds" / f".tmp-{self.build_id}"
        self.pins_tmp = path / "builds" / f".tmp-{self.build_id}.pins"
        self.main = StoreWriter(self.tmp)
        self.pins: dict[str, StoreWriter] = {}
        self.swapped: float | None = None
        self._kept: set[str] | None = None   # blobs in the store's packs (read at the first keep_sources)

    @property
    def store(self) -> Store | None:
        return self.main.store

    def open(self) -> Store:
        return self.main.open()

    def open_copy(self, previous: Path) -> Store:
        return self.main.open_copy(previous)

    def load(self, quads: Iterable[Quad]) -> None:
        self.main.load(quads)

    def pin(self, key: str) -> StoreWriter:
        """The writer of another pin of this build, in its own Oxigraph directory."""
        if key not in self.pins:
            self.pins_tmp.mkdir(parents=True, exist_ok=True)
            self.pins[key] = StoreWriter(self.pins_tmp / key)
        return self.pins[key]

    def keep_sources(self, files: Iterable[tuple[str, bytes]]) -> None:
        """Keep entity files (blob, bytes) by content, in one pack (source_packs.py); files an
        earlier build kept already are not written again."""
        if self._kept is None:
            self._kept = source_packs.Shelf(self.path).blobs()
        todo = [(blob, data) for blob, data in files if blob not in self._kept]
        try:
            source_packs.write_pack(self.path, todo)
        except OSError as e:
            raise _disk_error(source_packs.packs_dir(self.path), e) from e
        self._kept.update(blob for blob, _ in todo)

    def commit(self, on_complete: Callable[[Path], None] | None = None,
               blobs_of: Callable[[Path], set[str] | None] | None = None, optimize: bool = True,
               while_flushing: Callable[[], None] | None = None) -> Path:
        """Flush, close and atomically make this build (all its pins) the current one.

        ``on_complete(final_dir)`` runs once the build has its final name and before it
        becomes current (the build manifest is written there). ``while_flushing()`` is called
        just before the main database's flush (Python work in another thread then overlaps it),
        or once it is closed if nothing was left to flush."""
        assert self.main.store is not None
        self.main.while_flushing = while_flushing
        try:
            self.main.close(optimize)
        finally:
            if while_flushing is not None:
                while_flushing()
        for writer in self.pins.values():
            writer.close(optimize=False)   # each pin was closed (and compacted) when complete
        final = self.path / "builds" / self.build_id
        os.rename(self.tmp, final)
        if self.pins_tmp.exists():
            os.rename(self.pins_tmp, final.with_name(final.name + ".pins"))
        if on_complete is not None:
            on_complete(final)
        link_tmp = self.path / f".current-{self.build_id}"
        os.symlink(Path("builds") / self.build_id, link_tmp)
        os.replace(link_tmp, self.path / "current")
        _fsync_dir(self.path)
        self.swapped = time.perf_counter()   # readers see this build from here on
        _collect_old_builds(self.path, blobs_of)
        return final

    def abort(self) -> None:
        self.main.store = None
        for writer in self.pins.values():
            writer.store = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.pins_tmp, ignore_errors=True)


def _disk_error(where: Path, e: OSError) -> MgRdfError:
    reason = "the disk is full" if e.errno == errno.ENOSPC or "No space" in str(e) else str(e)
    return MgRdfError(f"{where}: cannot write the new store ({reason}); the previous store is untouched")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _collect_old_builds(path: Path, blobs_of: Callable[[Path], set[str] | None] | None = None) -> None:
    """Remove all but the newest builds (and the current one), and the kept source files
    no remaining build read. ``blobs_of(build_dir)`` says which files a build read."""
    builds = path / "builds"
    current = current_build(path)
    # a build is a directory named by its id (no dot); <id>.manifest, <id>.pins/ sit beside it
    done = sorted((p for p in builds.iterdir() if "." not in p.name and p.is_dir()), key=lambda p: p.name)
    keep = set(done[-KEEP_BUILDS:]) | ({current} if current else set())
    for p in done:
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)
            for side in p.parent.glob(p.name + ".*"):
                if side.is_dir() and not side.is_symlink():
                    shutil.rmtree(side, ignore_errors=True)
                else:
                    side.unlink(missing_ok=True)
    if blobs_of is None or not source_packs.sources_dir(path).is_dir():
        return
    wanted: set[str] = set()
    for p in keep:
        blobs = blobs_of(p)
        if blobs is None:
            return  # cannot tell what an old build needs: keep everything
        wanted |= blobs
    source_packs.collect(path, wanted)


@contextmanager
def new_build(path: Path) -> Iterator[NewBuild]:
    """Hold the store's build lock, clean up abandoned builds, and yield a fresh build."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise MgRdfError(f"{path}: the store path is not writable ({e.strerror})") from e
    with build_lock(path):
        builds = path / "builds"
        builds.mkdir(exist_ok=True)
        for stale in builds.glob(".tmp-*"):  # also their .sources folders
            shutil.rmtree(stale, ignore_errors=True)
        _remove_abandoned_copies(builds)
        for stale in path.glob(".current-*"):
            stale.unlink(missing_ok=True)
        build = NewBuild(path)
        try:
            yield build
        except BaseException:
            build.abort()
            raise
