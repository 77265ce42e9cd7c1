"""Several pins of the corpus in one store: their names, directories and index.

A build of several git revisions (``mg-rdf build REPO --rev v1.0.0 --rev HEAD``)
writes one Oxigraph database per pin, because the SPARQL default graph is the
union of a database's named graphs and one union over two releases would be
wrong. The current pin is the build directory ``STORE/current`` points to, so
everything that reads one store keeps working; the other pins sit beside it::

    STORE/builds/<id>/                    the current pin (its graphs as in any build)
    STORE/builds/<id>.manifest            what the current pin read (incremental builds)
    STORE/builds/<id>.pins/index.json     every pin of the build, oldest commit first
    STORE/builds/<id>.pins/<key>/         another pin's Oxigraph database
    STORE/builds/<id>.pins/<key>.manifest
    STORE/builds/<id>.pins/diffs/<a>..<b>.json.gz   what changed from pin a to pin b

A build of one source writes no ``.pins`` directory; ``read_index`` then answers
None and readers treat the build as its only pin. This module only reads and
writes the index (plain JSON, nothing from the pipeline), so the web app and
the query workers can use it cheaply.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

INDEX_FORMAT = 1
INDEX_NAME = "index.json"
DIFFS_DIR = "diffs"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class PinInfo:
    """One pin of a build: what was asked for, what it was, and where it is."""

    name: str                  # the revision as given: v1.0.0, HEAD, a branch or a hash
    key: str                   # the name made safe for a directory and a URL path segment
    commit: str | None         # the full commit hash the revision named at build time
    date: str | None           # its committer date (ISO 8601)
    path: str                  # its Oxigraph directory, relative to STORE/builds/
    current: bool = False      # the pin STORE/current serves
    entities: int = 0
    triples: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    violations: int = 0
    warnings: int = 0

    @property
    def short(self) -> str:
        return self.commit[:7] if self.commit else "working tree"


@dataclass
class DiffInfo:
    """A diff the build computed between two of its pins, and its counts by kind."""

    old: str                   # pin keys
    new: str
    file: str                  # relative to the pins directory
    counts: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""      # of both pins' builds and the diff code (a later build reuses the diff)


@dataclass
class PinIndex:
    builds: Path               # STORE/builds
    current_key: str
    pins: list[PinInfo]        # oldest commit first
    diffs: list[DiffInfo] = field(default_factory=list)

    @property
    def current(self) -> PinInfo:
        return next(p for p in self.pins if p.key == self.current_key)

    def find(self, name: str) -> PinInfo | None:
        """The pin called ``name``: its name as given, its key, or a prefix (7+ hex digits) of its commit."""
        for p in self.pins:
            if name in (p.name, p.key):
                return p
        if _HEX.match(name):
            found = [p for p in self.pins if p.commit and p.commit.startswith(name)]
            if found:
                return next((p for p in found if p.current), found[-1])
        return None

    def directory(self, pin: PinInfo) -> Path:
        return self.builds / pin.path

    def previous(self, pin: PinInfo) -> PinInfo | None:
        i = self.pins.index(pin)
        return self.pins[i - 1] if i > 0 else None

    def diff(self, old: PinInfo, new: PinInfo) -> DiffInfo | None:
        return next((d for d in self.diffs if d.old == old.key and d.new == new.key), None)

    def diff_path(self, info: DiffInfo) -> Path:
        return self.builds / (self.current.path + ".pins") / info.file


def pin_key(rev: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``rev`` as a directory and URL segment: unsafe characters become '_', never '.' or '..',
    and a suffix keeps two revisions that sanitise alike apart."""
    key = _UNSAFE.sub("_", rev).strip("_") or "pin"
    if set(key) == {"."}:
        key = "pin" + key
    base, n = key, 2
    while key in taken or key == "diffs":
        key, n = f"{base}-{n}", n + 1
    return key


def pins_dir(build_dir: Path) -> Path:
    """Where the other pins of a build live (``builds/<id>.pins``)."""
    return build_dir.with_name(build_dir.name + ".pins")


def write_index(directory: Path, current_key: str, pins: list[PinInfo], diffs: list[DiffInfo]) -> None:
    """Write ``index.json`` into a (temporary) pins directory."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"format": INDEX_FORMAT, "current": current_key, "pins": [asdict(p) for p in pins],
            "diffs": [asdict(d) for d in diffs]}
    tmp = directory / f".{INDEX_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, directory / INDEX_NAME)


_cache: dict[Path, tuple[float, PinIndex]] = {}
_cache_lock = threading.Lock()


def read_index(build_dir: Path) -> PinIndex | None:
    """The pins of the build at ``build_dir`` (None for a build of one source).

    Cached by path and modification time: the web app asks on every request."""
    path = pins_dir(build_dir) / INDEX_NAME
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    with _cache_lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != INDEX_FORMAT:
        return None
    index = PinIndex(build_dir.parent, data["current"], [PinInfo(**p) for p in data["pins"]],
                     [DiffInfo(**d) for d in data["diffs"]])
    with _cache_lock:
        if len(_cache) > 8:
            _cache.clear()
        _cache[path] = (mtime, index)
    return index
