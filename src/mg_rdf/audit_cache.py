"""The audit graphs of a build, re-made only for the audit files whose inputs changed.

An audit's graph depends on its file and on the entities it looks up: its own
entity (existence and blob, for the stale flag) and the corpus paths its claims
cite (existence). ``audit_pass`` records those lookups per audit file; the next
build re-reads an audit only when its file or one of the looked-up entities
changed, so editing one entity does not re-read 533 audits. A full build (no
previous manifest) reads them all; both give the same graphs (tested).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyoxigraph import NamedNode, Quad, RdfFormat, parse, serialize

from . import manifest
from .audits import _provenance, audit_graph_iri, audit_iri, map_audit, read_audit
from .integrity import CorpusIndex
from .problems import Problem, Severity
from .schema import by_layout
from .source import CorpusSource
from .vocab import DataIris
from .workers import forked_pool, kill_pool


class _Recording:
    """Entity id -> blob (a view of ``data``, not a copy: one is made per audit), remembering
    every id looked up and what it said then."""

    def __init__(self, data: Mapping[str, str]):
        self.data = data
        self.seen: dict[str, str | None] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        found = self.seen[key] = self.data.get(key)
        return default if found is None else found

    def __contains__(self, key: object) -> bool:
        self.seen[key] = self.data.get(key)  # type: ignore[index,arg-type]
        return key in self.data


class _PredictedBlobs(Mapping):
    """``_predicted_blobs(source)``, worked out at the first look-up: a corpus without audits
    never reads its entity files for it."""

    def __init__(self, source: CorpusSource):
        self.source = source
        self._blobs: dict[str, str] | None = None

    @property
    def blobs(self) -> dict[str, str]:
        if self._blobs is None:
            known = len(self.source.problems)
            self._blobs = _predicted_blobs(self.source)
            del self.source.problems[known:]   # the caller reports the entity files' own problems
        return self._blobs

    def __getitem__(self, key: str) -> str:
        return self.blobs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)


@dataclass
class AuditOutcome:
    quads: list[Quad] = field(default_factory=list)        # graphs to write (all, or the changed ones)
    drop: set[NamedNode] = field(default_factory=set)       # graphs of the previous build to remove first
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)   # for this build's manifest
    problems: list[Problem] = field(default_factory=list)
    # made in another process (see in_background): the quads as N-Quads, for Oxigraph to parse
    nquads: bytes | None = None
    seconds: float = 0.0
    source_stats: dict[str, Any] = field(default_factory=dict)
    source_problems: list[Problem] = field(default_factory=list)

    def statements(self) -> list[Quad]:
        """The quads as objects (parsed from ``nquads`` the first time, when made elsewhere)."""
        if self.nquads is not None:
            self.quads = list(parse(self.nquads, format=RdfFormat.N_QUADS))
            self.nquads = None
        return self.quads


class PendingAudits:
    """``audit_pass`` in a forked process while the caller loads the entities: the audits'
    Python work (~1.4 s of the real corpus) leaves the build's critical path, and the quads
    come back as N-Quads bytes that Oxigraph parses (pickling 120,000 quad objects would cost
    more than it saves).

    ``PendingAudits.early`` starts it before the entities are even read, so that it runs while
    the caller parses them (the second core is otherwise idle then): an audit needs of the
    entities only their ids and blobs, which the layout predicts (file name = id, first path
    wins, as in ``CorpusIndex``). Every id an audit looked up is recorded with what it found;
    ``result`` checks those against the real index and returns None when any differs (a file
    whose id is not its name, a duplicate, an unreadable file an audit cites): the caller then
    reads the audits again with the real index."""

    def __init__(self, source: CorpusSource, index: CorpusIndex | None, iris: DataIris,
                 previous: dict[str, dict[str, Any]] | None):
        global _JOB
        self.predicted = index is None
        _JOB = (source, None if index is None else entity_blobs(index), iris, previous)
        try:
            self.pool = forked_pool(1)   # the child inherits _JOB
            self.future = self.pool.submit(_background_pass)
        finally:
            _JOB = None

    @classmethod
    def early(cls, source: CorpusSource, iris: DataIris) -> PendingAudits:
        """A full build's audit pass, started before the entities are read (see the class doc)."""
        return cls(source, None, iris, None)

    def result(self, source: CorpusSource, index: CorpusIndex | None = None) -> AuditOutcome | None:
        try:
            out = self.future.result()
        finally:
            self.pool.shutdown()
        if self.predicted:
            assert index is not None
            blobs = entity_blobs(index)
            if any(blobs.get(k) != v for entry in out.entries.values() for k, v in entry["deps"].items()):
                return None
        if hasattr(source, "stats"):
            source.stats.update(out.source_stats)
        source.problems.extend(out.source_problems)
        return out

    def cancel(self) -> None:
        kill_pool(self.pool)


_JOB: tuple | None = None


def entity_blobs(index: CorpusIndex) -> dict[str, str]:
    return {eid: e.blob for eid, e in index.by_id.items()}


def _predicted_blobs(source: CorpusSource) -> dict[str, str]:
    """Entity id -> blob as the layout says before any file is parsed (see ``PendingAudits``)."""
    out: dict[str, str] = {}
    for f in sorted(source.entity_files(), key=lambda f: f.path):
        found = by_layout(f.path)
        if found is not None:
            out.setdefault(found[0], f.blob)
    return out


def _background_pass() -> AuditOutcome:
    assert _JOB is not None
    t0 = time.perf_counter()
    source, blobs, iris, previous = _JOB
    known = len(source.problems)
    out = _audit_pass(source, _PredictedBlobs(source) if blobs is None else blobs, iris, previous)
    # what the source noticed while reading the audits goes back to the parent's source
    out.source_stats = {p: k for p, k in getattr(source, "stats", {}).items() if p.startswith("audits/")}
    out.source_problems = source.problems[known:]
    out.nquads = serialize(out.quads, format=RdfFormat.N_QUADS)
    out.quads = []
    out.seconds = time.perf_counter() - t0
    return out


def audit_pass(source: CorpusSource, index: CorpusIndex, iris: DataIris,
               previous: dict[str, dict[str, Any]] | None = None) -> AuditOutcome:
    return _audit_pass(source, entity_blobs(index), iris, previous)


def _audit_pass(source: CorpusSource, blobs: Mapping[str, str], iris: DataIris,
                previous: dict[str, dict[str, Any]] | None) -> AuditOutcome:
    out = AuditOutcome()
    first: dict[str, str] = {}   # entity id -> the audit file that holds its graph
    for f in sorted(source.audit_files(), key=lambda f: f.path):
        old = previous.get(f.path) if previous else None
        if (old is not None and old["blob"] == f.blob and old["entity_id"] not in first
                and not old.get("duplicate")   # a duplicate may hold the graph now that the first is gone
                and all(blobs.get(k) == v for k, v in old["deps"].items())):
            if old["entity_id"]:
                first[old["entity_id"]] = f.path
            out.entries[f.path] = old
            out.problems.extend(manifest._unproblem(r) for r in old["problems"])
            continue
        read = read_audit(f)
        problems = list(read.problems)
        entry: dict[str, Any] = {"blob": f.blob, "entity_id": None, "deps": {}, "problems": []}
        if read.record is not None:
            entity_id = read.record.entity_id
            if entity_id in first:
                entry["duplicate"] = True
                problems.append(Problem(f.path, read.record.line("entity_id"), "entity_id",
                                        f"a second audit of this entity ({first[entity_id]} came first); not loaded",
                                        entity_id, Severity.VIOLATION, "audit-duplicate"))
            else:
                first[entity_id] = f.path
                g = NamedNode(audit_graph_iri(iris, entity_id))
                looked_up = _Recording(blobs)
                quads, found = map_audit(read.record, iris, looked_up, graph=g)
                problems.extend(found)
                out.quads.extend(quads)  # type: ignore[arg-type]
                out.quads.extend(_provenance(g, NamedNode(audit_iri(iris, entity_id)), f, source.provenance))
                entry.update(entity_id=entity_id, deps=looked_up.seen)
        entry["problems"] = [manifest._problem(p) for p in problems]
        out.entries[f.path] = entry
        out.problems.extend(problems)
    if previous:
        for path, old in previous.items():
            if old.get("entity_id") and out.entries.get(path) is not old:
                out.drop.add(NamedNode(audit_graph_iri(iris, old["entity_id"])))
    return out
