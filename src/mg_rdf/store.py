"""The Oxigraph store on disk, and swapping a new build in atomically.

Layout of a store path::

    STORE/current        symlink -> builds/<build-id>  (what readers open)
    STORE/builds/<id>/   a complete Oxigraph store
    STORE/builds/<id>.sources/<entity-id>.md   the source file of each entity, as read
    STORE/builds/.tmp-*  a build in progress (removed by the next build if left behind)
    STORE/lock           held by a running build

A build writes a new Oxigraph directory and only when it is complete renames it
into ``builds/`` and replaces the ``current`` symlink with ``os.replace`` (an
atomic rename). A build that fails or is killed at any point leaves ``current``
pointing at the previous, intact store. Readers hold the directory they opened;
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

from pyoxigraph import Quad, Store

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


def sources_dir(build_dir: Path) -> Path:
    """Where a build keeps the source Markdown of its entities (served as text/markdown)."""
    return build_dir.with_name(build_dir.name + ".sources")


def open_read_only(path: Path) -> Store:
    build = current_build(path)
    if build is None:
        raise MgRdfError(f"{path}: no store has been built here yet (run `mg-rdf build`)")
    try:
        return Store.read_only(str(build))
    except OSError as e:
        raise MgRdfError(f"{build}: cannot open the store ({e})") from e


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MgRdfError(f"{path}: another build is running on this store") from None
        yield


class NewBuild:
    """A store being built: write quads, then ``commit()`` to swap it in, or ``abort()``."""

    def __init__(self, path: Path):
        self.path = path
        # sortable by time, unique even for two builds in one second of one process
        self.build_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tmp = path / "builds" / f".tmp-{self.build_id}"
        self.store: Store | None = None

    def open(self) -> Store:
        self.tmp.mkdir(parents=True)
        self.store = Store(str(self.tmp))
        return self.store

    def open_copy(self, previous: Path) -> Store:
        """Start from a copy of a previous build: RocksDB checkpoints hard-link the data
        files, so this takes milliseconds, and the previous build stays untouched."""
        try:
            Store.read_only(str(previous)).backup(str(self.tmp))
            self.store = Store(str(self.tmp))
        except OSError as e:
            raise _disk_error(self.tmp, e) from e
        return self.store

    def link_sources(self, previous: Path, entity_ids: set[str]) -> None:
        """Reuse unchanged source files of a previous build (hard links, no copy)."""
        folder = self.tmp_sources
        folder.mkdir(exist_ok=True)
        for eid in entity_ids:
            src = previous / f"{eid}.md"
            if src.exists():
                os.link(src, folder / f"{eid}.md")

    @property
    def tmp_sources(self) -> Path:
        return sources_dir(self.tmp)

    def keep_source(self, entity_id: str, data: bytes) -> None:
        """Keep an entity's source file beside the store (ids are checked to be plain names)."""
        if "/" in entity_id or entity_id in ("", ".", "..") or "\0" in entity_id:
            return
        folder = self.tmp_sources
        folder.mkdir(exist_ok=True)
        (folder / f"{entity_id}.md").write_bytes(data)

    def load(self, quads: Iterable[Quad]) -> None:
        assert self.store is not None
        try:
            self.store.bulk_extend(quads)
        except OSError as e:
            raise _disk_error(self.tmp, e) from e

    def commit(self, on_complete: Callable[[Path], None] | None = None) -> Path:
        """Flush, close and atomically make this build the current one.

        ``on_complete(final_dir)`` runs once the build has its final name and before it
        becomes current (the build manifest is written there)."""
        assert self.store is not None
        try:
            self.store.flush()
            self.store.optimize()
        except OSError as e:
            raise _disk_error(self.tmp, e) from e
        del self.store
        self.store = None
        final = self.path / "builds" / self.build_id
        if self.tmp_sources.exists():
            os.rename(self.tmp_sources, sources_dir(final))
        os.rename(self.tmp, final)
        if on_complete is not None:
            on_complete(final)
        link_tmp = self.path / f".current-{self.build_id}"
        os.symlink(Path("builds") / self.build_id, link_tmp)
        os.replace(link_tmp, self.path / "current")
        _fsync_dir(self.path)
        _collect_old_builds(self.path)
        return final

    def abort(self) -> None:
        self.store = None
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.tmp_sources, ignore_errors=True)


def _disk_error(where: Path, e: OSError) -> MgRdfError:
    reason = "the disk is full" if e.errno == errno.ENOSPC or "No space" in str(e) else str(e)
    return MgRdfError(f"{where}: cannot write the new store ({reason}); the previous store is untouched")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _collect_old_builds(path: Path) -> None:
    builds = path / "builds"
    current = current_build(path)
    done = sorted((p for p in builds.iterdir() if not p.name.startswith(".") and p.is_dir()
                   and not p.name.endswith(".sources")), key=lambda p: p.name)
    keep = set(done[-KEEP_BUILDS:]) | ({current} if current else set())
    for p in done:
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)
            shutil.rmtree(sources_dir(p), ignore_errors=True)
            p.with_name(p.name + ".manifest.json.gz").unlink(missing_ok=True)


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
    with _lock(path):
        builds = path / "builds"
        builds.mkdir(exist_ok=True)
        for stale in builds.glob(".tmp-*"):  # also their .sources folders
            shutil.rmtree(stale, ignore_errors=True)
        for stale in path.glob(".current-*"):
            stale.unlink(missing_ok=True)
        build = NewBuild(path)
        try:
            yield build
        except BaseException:
            build.abort()
            raise
