"""The entity files that builds read, kept in the store by content (git blob hash) so that
``serve`` can show an entity's Markdown as the build read it.

A build writes the files it read as packs, a few files in all, not one file per entity::

    STORE/sources/packs/<name>.pack   the files' bytes, one after another
    STORE/sources/packs/<name>.idx    JSON: {"blobs": {blob: [offset, length]}}
    STORE/sources/<ab>/<blob>         one file per blob, as builds before packs wrote them (read only)

Why: creating a file cost 0.05-0.9 ms of kernel time here (ext4; the most while the store's
loads write), so one file per entity was 0.1-0.9 s of a real-corpus build on its critical path
and ~4 CPU-seconds of a 10x build (82,800 files at 100x). A pack is written to a temporary
name and renamed, then its index the same way: a reader only sees a pack whose index is
complete. Packs are never changed; old builds' packs go when no kept build read any of their
files (``collect``)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

_BLOB = re.compile(r"[0-9a-f]{40}")


def sources_dir(store_path: Path) -> Path:
    return store_path / "sources"


def packs_dir(store_path: Path) -> Path:
    return sources_dir(store_path) / "packs"


def loose_path(store_path: Path, blob: str) -> Path:
    """Where a build before packs kept an entity file."""
    return sources_dir(store_path) / blob[:2] / blob


def _write_new(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_pack(store_path: Path, files: Iterable[tuple[str, bytes]]) -> int:
    """Keep ``files`` (blob, bytes) as one new pack; return how many were written. Names
    that are not a git blob hash are skipped (a pack never holds anything else)."""
    index: dict[str, list[int]] = {}
    parts: list[bytes] = []
    offset = 0
    for blob, data in files:
        if blob in index or not _BLOB.fullmatch(blob):
            continue
        index[blob] = [offset, len(data)]
        parts.append(data)
        offset += len(data)
    if not index:
        return 0
    folder = packs_dir(store_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex}"
    _write_new(folder / f"{name}.pack", b"".join(parts))
    _write_new(folder / f"{name}.idx", json.dumps({"blobs": index}, separators=(",", ":")).encode())
    return len(index)


def _indexes(store_path: Path) -> Iterable[tuple[str, dict[str, list[int]]]]:
    """(pack name, its index) of every complete pack."""
    try:
        entries = list(os.scandir(packs_dir(store_path)))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.endswith(".idx") and not entry.name.startswith("."):
            try:
                with open(entry.path, "rb") as fh:
                    yield entry.name[:-4], json.load(fh)["blobs"]
            except (OSError, ValueError, KeyError):
                continue   # removed meanwhile (an old build collected), or not ours


class Shelf:
    """Reads kept entity files by blob: from the packs, else from a loose file. The packs'
    indexes are read at the first look-up and again when a blob is not found (a newer build
    may have written a pack since)."""

    def __init__(self, store_path: Path):
        self.store_path = store_path
        self._where: dict[str, tuple[str, int, int]] = {}
        self._seen: set[str] = set()

    def _refresh(self) -> None:
        for name, blobs in _indexes(self.store_path):
            if name not in self._seen:
                self._seen.add(name)
                for blob, (offset, length) in blobs.items():
                    self._where.setdefault(blob, (name, offset, length))

    def blobs(self) -> set[str]:
        """Every blob held in a pack."""
        self._refresh()
        return set(self._where)

    def read(self, blob: str) -> bytes | None:
        if not _BLOB.fullmatch(blob):
            return None
        for _ in range(2):   # a second time with fresh indexes, when a pack was collected meanwhile
            if blob not in self._where:
                self._refresh()
            found = self._where.get(blob)
            if found is None:
                break
            name, offset, length = found
            try:
                with open(packs_dir(self.store_path) / f"{name}.pack", "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(length)
                if len(data) == length:
                    return data
            except OSError:
                pass
            self._where.clear()
            self._seen.clear()
        try:
            return loose_path(self.store_path, blob).read_bytes()
        except OSError:
            return None


def collect(store_path: Path, wanted: set[str]) -> None:
    """Remove the packs and loose files of which no blob is ``wanted`` (a pack with any wanted
    blob stays whole), and what builds that died left of a pack: temporary files, a pack without
    its index (the caller holds the build lock: no pack is being written)."""
    try:
        entries = list(os.scandir(packs_dir(store_path)))
    except FileNotFoundError:
        entries = []
    names = {e.name for e in entries}
    for entry in entries:
        if (entry.name.startswith(".") and entry.name.endswith(".tmp")) or (
                entry.name.endswith(".pack") and entry.name[:-5] + ".idx" not in names):
            os.unlink(entry.path)
    for name, blobs in list(_indexes(store_path)):
        if not wanted.intersection(blobs):
            folder = packs_dir(store_path)
            for suffix in (".idx", ".pack"):   # the index first: a reader never sees an index without its pack
                try:
                    os.unlink(folder / f"{name}{suffix}")
                except FileNotFoundError:
                    pass
    try:
        folders = list(os.scandir(sources_dir(store_path)))
    except FileNotFoundError:
        return
    for folder in folders:   # os.scandir: pathlib's glob took ~10 ms for ~1,400 files
        if folder.name == "packs" or not folder.is_dir(follow_symlinks=False):
            continue
        for f in os.scandir(folder.path):
            if f.name not in wanted and not f.name.startswith("."):
                try:
                    os.unlink(f.path)
                except FileNotFoundError:
                    pass
