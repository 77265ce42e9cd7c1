"""The store the app serves, reopened when a build swaps a new one in.

``StoreHandle.current()`` returns a ``Snapshot``: the read-only pyoxigraph store
of the current build plus what every page needs about it (entity names and
types, dataset facts, a version string for ETags). A request keeps the snapshot
it started with, so it never sees half of one build and half of another.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import Store

from .. import schema
from ..problems import MgRdfError
from ..store import current_build, source_path
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
        try:
            return source_path(self.store_root or self.build_dir.parent.parent, e.blob).read_bytes()
        except OSError:
            return None


_CLASS_TO_TYPE = {MG + t.cls: t.name for t in schema.TYPES.values()}


def load_snapshot(build_dir: Path, iris: DataIris) -> Snapshot:
    store = Store.read_only(str(build_dir))
    snap = Snapshot(store, build_dir, iris, build_dir.name, build_dir.stat().st_mtime)
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


def _link_target(path: Path) -> str | None:
    try:
        return os.readlink(path / "current")
    except OSError:
        return None
