"""The store the app serves, reopened when a build swaps a new one in.

``StoreHandle.current()`` returns a ``Snapshot``: the read-only pyoxigraph store
of the current build plus what every page needs about it (entity names and
types, dataset facts, a version string for ETags). A request keeps the snapshot
it started with, so it never sees half of one build and half of another.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import Store

from .. import schema
from ..problems import MgRdfError
from ..remote import RemoteStore, is_remote
from ..source_packs import Shelf
from ..store import current_build
from ..vocab import MG, DataIris


@dataclass
class EntitySummary:
    id: str
    type: str          # schema type name, e.g. "campaign"
    name: str
    path: str          # corpus-relative source path
    blob: str = ""     # git blob hash of the file the build read


@dataclass
class Snapshot:
    store: Store
    build_dir: Path
    iris: DataIris
    version: str                           # the build id: changes with every build
    built_at: float                        # seconds since the epoch (for Last-Modified)
    entities: dict[str, EntitySummary] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)   # title, attribution, commit, modified
    store_root: Path | None = None         # the store directory, when build_dir is a pin's (builds/<id>.pins/<key>)

    def name_of(self, entity_id: str) -> str:
        e = self.entities.get(entity_id)
        return e.name if e else entity_id

    def source_text(self, entity_id: str) -> bytes | None:
        """The entity's source Markdown file as the build read it (None if unknown)."""
        e = self.entities.get(entity_id)
        if e is None or not e.blob:
            return None
        return _shelf(self.store_root or self.build_dir.parent.parent).read(e.blob)   # None if gone


_SHELVES: dict[Path, Shelf] = {}


def _shelf(store_root: Path) -> Shelf:
    """One reader of kept sources per store (it reads the packs' indexes once, and again on a miss)."""
    shelf = _SHELVES.get(store_root)
    if shelf is None:
        shelf = _SHELVES[store_root] = Shelf(store_root)
    return shelf


_CLASS_TO_TYPE = {MG + t.cls: t.name for t in schema.TYPES.values()}


def query_location(store: Path | str) -> str:
    """What a query worker opens: the current build directory, or a remote store's URL.
    Raises OSError when no build is current."""
    if is_remote(store):
        return str(store)
    return os.path.join(store, os.readlink(os.path.join(store, "current")))


def load_snapshot(build_dir: Path, iris: DataIris, store: Store | None = None, version: str | None = None,
                  built_at: float | None = None) -> Snapshot:
    store = store if store is not None else Store.read_only(str(build_dir))
    snap = Snapshot(store, build_dir, iris, version or build_dir.name,
                    built_at if built_at is not None else build_dir.stat().st_mtime)
    q = f"""SELECT ?e ?c ?name ?path ?blob WHERE {{ GRAPH ?g {{ ?g <{MG}describes> ?e ; <{MG}sourcePath> ?path .
            ?e a ?c . OPTIONAL {{ ?e <{MG}name> ?name }} OPTIONAL {{ ?g <{MG}sourceBlob> ?blob }} }} }}"""
    for row in store.query(q):
        eid = iris.entity_id_of(row["e"].value)
        etype = _CLASS_TO_TYPE.get(row["c"].value)
        if eid and etype:
            name = row["name"].value if row["name"] else eid
            blob = row["blob"].value if row["blob"] else ""
            snap.entities[eid] = EntitySummary(eid, etype, name, row["path"].value, blob)
    wanted = {"http://purl.org/dc/terms/title": "title", "https://schema.org/creditText": "attribution",
              MG + "corpusCommit": "commit", "http://purl.org/dc/terms/modified": "modified",
              "http://purl.org/dc/terms/source": "repository", MG + "corpusRevision": "revision"}
    q = f"SELECT ?p ?o WHERE {{ GRAPH <{iris.dataset_graph}> {{ <{iris.dataset}> ?p ?o }} }}"
    for row in store.query(q):
        key = wanted.get(row["p"].value)
        if key:
            snap.facts[key] = row["o"].value
    return snap


class StoreHandle:
    """Opens the current build of a store path and follows the ``current`` symlink."""

    def __init__(self, path: Path, iris: DataIris):
        self.path = path
        self.iris = iris
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._target: str | None = None

    def current(self) -> Snapshot:
        target = _link_target(self.path)
        snap = self._snapshot
        if snap is not None and target == self._target:
            return snap
        with self._lock:
            if self._snapshot is None or target != self._target:
                build = current_build(self.path)
                if build is None:
                    raise MgRdfError(f"{self.path}: no store has been built here yet (run `mg-rdf build`)")
                self._snapshot = load_snapshot(build, self.iris)
                self._target = target
            return self._snapshot

    @property
    def build_dir(self) -> Path | None:
        return current_build(self.path)


class RemoteStoreHandle:
    """Serves from a remote SPARQL store; notices a new build by its build record (checked at
    most every ``poll`` seconds). Caches (dumps, rendered pages) go to a local folder."""

    def __init__(self, url: str, iris: DataIris, cache_dir: Path, poll: float = 5.0):
        self.url, self.iris, self.cache_dir, self.poll = url, iris, cache_dir, poll
        self.store = RemoteStore(url)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._version: str | None = None

    def _remote_version(self) -> str:
        q = f"SELECT ?t WHERE {{ GRAPH <{self.iris.base}graph/build> {{ ?b <http://www.w3.org/ns/prov#startedAtTime> ?t }} }}"
        rows = list(self.store.query(q))
        if not rows:
            raise MgRdfError(f"{self.url}: no mg-rdf build is stored there yet (run `mg-rdf build … --store {self.url}`)")
        return "remote-" + hashlib.sha1(rows[0]["t"].value.encode()).hexdigest()[:12]

    def current(self) -> Snapshot:
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and now - self._checked < self.poll:
            return snap
        with self._lock:
            if self._snapshot is None or now - self._checked >= self.poll:
                version = self._remote_version()
                self._checked = now
                if version != self._version or self._snapshot is None:
                    build_dir = self.cache_dir / "builds" / version
                    build_dir.mkdir(parents=True, exist_ok=True)
                    self._snapshot = load_snapshot(build_dir, self.iris, self.store, version, time.time())
                    self._snapshot.store_root = self.cache_dir
                    self._version = version
            return self._snapshot

    @property
    def build_dir(self) -> Path | None:
        return self._snapshot.build_dir if self._snapshot else None


def _link_target(path: Path) -> str | None:
    try:
        return os.readlink(path / "current")
    except OSError:
        return None
