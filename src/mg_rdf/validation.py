"""SHACL validation of the mapped entities with pyshacl, reported in the
corpus editor's terms (file, line, field, value).

pyshacl is the slowest stage of a build, so the work is split by entity type
into partitions validated in parallel worker processes. Each partition's data
graph holds what its entities' files state plus the ``rdf:type`` of every
entity they reference (so ``sh:class`` checks see real targets); its shapes
graph is the full shapes file with the ``sh:targetClass`` of the other
partitions' types removed, so a referenced entity present only by its type is
not itself a focus node. No shape is weakened: each entity is checked against
every constraint of its type, exactly as one whole-graph run would.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from concurrent.futures import ProcessPoolExecutor

import pyshacl
from pyshacl.shape import Shape
from pyoxigraph import BlankNode, Literal, NamedNode, RdfFormat, Triple, parse
from rdflib import BNode, Graph
from rdflib import Literal as RLiteral
from rdflib import URIRef
from rdflib.namespace import RDF, SH
from rdflib.plugins.stores.memory import SimpleMemory

from . import schema
from .config import SHAPES_PATH
from .integrity import CorpusIndex
from .mapping import MappedEntity
from .problems import Problem, Severity
from .vocab import MG, DataIris
from .workers import forked_pool, kill_pool


# prop local name -> YAML key, per entity type and for the things inside an entity
_FIELD_OF: dict[tuple[str, str], str] = {}
for _t in schema.TYPES.values():
    for _f in _t.fields.values():
        _FIELD_OF[(_t.name, _f.prop)] = _f.name
    _FIELD_OF[(_t.name, "publisherName")] = "publisher"
    _FIELD_OF[(_t.name, "ongoing")] = "end_date"
    _FIELD_OF[(_t.name, "affiliatedWith")] = "affiliations"
    _FIELD_OF[(_t.name, "body")] = "body"
_PART_FIELDS = {
    "source": ("sources", {v: k for k, v in schema.SOURCE_FIELDS.items()}),
    "affiliation": ("affiliations", {**{v: k for k, v in schema.AFFILIATION_FIELDS.items()},
                                     "startDate": "period", "endDate": "period"}),
    "profile": ("public_profiles", {v: k for k, v in schema.PROFILE_FIELDS.items()}),
    "effect": ("effects", {v: k for k, v in schema.EFFECT_FIELDS.items()}),
}

# Partitions of roughly equal pyshacl cost (the corpus's sources and affiliations
# dominate): balanced by measurement on the real corpus, see docs/DESIGN.md.
PARTITIONS: tuple[tuple[str, ...], ...] = (
    ("person", "organization", "strategy", "message"),
    ("campaign", "event", "funder", "voice", "publication", "local-group"),
)


_IRI_CACHE: dict[str, URIRef] = {}
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def _to_rdflib(term: NamedNode | Literal | BlankNode) -> URIRef | RLiteral:
    if isinstance(term, NamedNode):
        v = term.value
        node = _IRI_CACHE.get(v)
        if node is None:
            node = _IRI_CACHE[v] = URIRef(v)
        return node
    if isinstance(term, Literal):
        if term.language:
            return RLiteral(term.value, lang=term.language)
        dt = term.datatype.value
        if dt == _XSD_STRING:
            return RLiteral(term.value)
        return RLiteral(term.value, datatype=_to_rdflib(term.datatype))
    raise TypeError(f"unexpected term {term!r}")


_shapes: dict[tuple[str, ...], Graph] = {}
_shapes_of: list[bytes] = [b""]   # the shapes file's digest when ``_shapes`` was filled


def _shapes_graph(types: Sequence[str]) -> Graph:
    """The shapes for one partition, parsed and flattened once per process and shapes file: a
    watching server keeps them between builds (~50 ms each time otherwise), and parses them again
    when the file changes (the file is read and hashed each time: ~0.1 ms)."""
    digest = hashlib.sha1(SHAPES_PATH.read_bytes()).digest()
    if digest != _shapes_of[0]:
        _shapes.clear()
        _shapes_of[0] = digest
    key = tuple(types)
    if key not in _shapes:
        _shapes[key] = _partition_shapes(key)
    return _shapes[key]


def flatten(g: Graph) -> Graph:
    """Give every property shape of a class-targeted node shape that node shape's target classes
    directly, and unhook it from the node shape (in place; returns ``g``).

    The same constraints are checked on the same focus nodes and reported the same way (a
    property shape's results never pass through its node shape), but pyshacl then validates
    each property shape once over all its focus nodes instead of once per focus node: that
    per-call overhead was most of its time (~23,000 calls per partition of the real corpus,
    now ~100; 2.3-2.6 s -> 0.8-0.9 s per partition). Node shapes with other kinds of target
    are left as they are. tests/test_validation_flatten.py checks that reports are unchanged.
    """
    for node in set(g.subjects(SH.targetClass, None)):
        if any(g.value(node, p) is not None for p in _OTHER_TARGETS):
            continue
        classes = list(g.objects(node, SH.targetClass))
        for prop in list(g.objects(node, SH.property)):
            for cls in classes:
                g.add((prop, SH.targetClass, cls))
            g.remove((node, SH.property, prop))
    return g


_OTHER_TARGETS = (SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf)


def _partition_shapes(types: tuple[str, ...]) -> Graph:
    g = shapes_file_graph()
    flatten(g)
    keep = {URIRef(MG + schema.TYPES[t].cls) for t in types}
    entity_classes = {URIRef(MG + t.cls) for t in schema.TYPES.values()}
    for shape, _, cls in list(g.triples((None, SH.targetClass, None))):
        if cls in entity_classes and cls not in keep:
            g.remove((shape, SH.targetClass, cls))
    return g


def shapes_file_graph() -> Graph:
    """The shapes file as an rdflib graph, its prefixes bound, read by pyoxigraph's Turtle parser:
    ~8 ms in a new process (1 ms of it the parse) against 15-17 ms for rdflib's parser (a new
    ``mg-rdf build`` process reads it for every partition it validates).
    tests/test_validation_flatten.py checks it is rdflib's graph."""
    parser = parse(SHAPES_PATH.read_bytes(), format=RdfFormat.TURTLE)

    def term(t: NamedNode | Literal | BlankNode) -> URIRef | RLiteral | BNode:
        return BNode(t.value) if isinstance(t, BlankNode) else _to_rdflib(t)   # labels unique to this parse

    g = Graph()
    for q in parser:
        g.add((term(q.subject), term(q.predicate), term(q.object)))
    for prefix, namespace in parser.prefixes.items():
        g.bind(prefix, namespace, override=True, replace=True)
    return g


# Set in the parent before the workers fork, so the input is shared, not pickled.
_JOB: tuple[list[MappedEntity], CorpusIndex] | None = None


class _DataStore(SimpleMemory):
    """pyshacl's data graph store: rdflib's plain-dict ``SimpleMemory``, filled ~5x faster than
    the default context-aware ``Memory`` (whose ``add`` was ~2/3 of a SHACL worker's time), and
    no slower to look up. It holds one graph, ``self.graph``. pyshacl wraps a data graph in a
    ``Dataset``, which wants a context-aware store, and looks a blank node's graph up through
    the contexts of its triples: each triple is in ``self.graph``. ``len`` is counted once and
    kept: ``SimpleMemory`` walks every triple for it, and pyshacl asks for it (as the graph's
    truth value) with each result it makes. tests/test_validation_store.py checks that pyshacl
    reports the same over it as over rdflib's default store."""

    context_aware = True
    graph_aware = True

    def __init__(self) -> None:
        super().__init__()
        self.graph = Graph(store=self)
        self._count: int | None = 0
        self._in = (self.graph,)

    def fill(self, triples: Iterable[tuple]) -> None:
        """Add ``triples`` without ``Graph.add``'s checks."""
        add, g = super().add, self.graph
        for t in triples:
            add(t, g)
        self._count = None

    def add(self, triple, context, quoted=False):   # type: ignore[no-untyped-def,override]
        super().add(triple, context, quoted)
        self._count = None

    def remove(self, triple_pattern, context=None):   # type: ignore[no-untyped-def,override]
        super().remove(triple_pattern, context)
        self._count = None

    def __len__(self, context=None) -> int:   # type: ignore[no-untyped-def,override]
        if self._count is None:
            self._count = super().__len__(context)
        return self._count

    def _SimpleMemory__contexts(self):   # type: ignore[no-untyped-def]   # the graph of each triple found
        return iter(self._in)

    def contexts(self, triple=None):   # type: ignore[no-untyped-def,override]
        return iter(self._in)


def _data_graph(entities: Sequence[MappedEntity], index: CorpusIndex, iris: DataIris) -> tuple[Graph, set[URIRef]]:
    """The data graph of ``entities`` and its focus nodes (the subjects their files describe)."""

    def kind_of(_e: MappedEntity, target_id: str) -> str | None:
        target = index.by_id.get(target_id)
        return target.type if target is not None and target.type in schema.TYPES else None

    return data_graph(entities, kind_of, iris)


def data_graph(entities: Sequence[MappedEntity], kind_of: Callable[[MappedEntity, str], str | None],
               iris: DataIris) -> tuple[Graph, set[URIRef]]:
    """What ``entities``' files state plus the ``rdf:type`` of each entity they refer to, as
    ``kind_of(entity, referenced id)`` says (None: not typed), in a ``_DataStore``; and the focus
    nodes (the subjects the files describe)."""
    focus: set[URIRef] = set()
    terms: dict = {}   # pyoxigraph term -> rdflib term: entities repeat subjects, predicates, dates
    get = terms.get

    def triples() -> Iterator[tuple]:
        for e in entities:
            for s, p, o in e.triples:
                rs = get(s)
                if rs is None:
                    rs = terms[s] = _to_rdflib(s)
                focus.add(rs)
                rp = get(p)
                if rp is None:
                    rp = terms[p] = _to_rdflib(p)
                ro = get(o)
                if ro is None:
                    ro = terms[o] = _to_rdflib(o)
                yield rs, rp, ro
            for ref in e.references:
                kind = kind_of(e, ref.target_id)
                if kind is not None:
                    yield URIRef(iris.entity(ref.target_id)), RDF.type, URIRef(MG + schema.TYPES[kind].cls)

    store = _DataStore()
    store.fill(triples())
    return store.graph, focus


def run_shacl(data: Graph, focus: set, types: Sequence[str]) -> tuple[bool, Graph]:
    """pyshacl over ``data`` with the shapes of the partition ``types``, its focus nodes narrowed
    to ``focus`` (see ``_only_focus``): (conforms, results graph)."""
    _only_focus(focus)
    try:
        conforms, results, _ = pyshacl.validate(
            data, shacl_graph=_shapes_graph(types), inference="none", inplace=True,
            advanced=False, allow_warnings=True, allow_infos=True)
    finally:
        _only_focus(None)
    return conforms, results


_FOCUS: set | None = None


def _only_focus(nodes: set | None) -> None:
    """Make pyshacl's target selection keep only ``nodes`` (None: all, as usual).

    A data graph types the entities its entities refer to, so a referenced entity of a type
    being validated is a focus node too: pyshacl would check it (it has nothing but its type)
    and report every required field missing, results thrown away afterwards (~40% of a streamed
    chunk's SHACL time; for one edited entity, most of it). Only the top-level target selection
    (``Shape.focus_nodes``) is narrowed; value nodes checked through sh:node, sh:or etc. are
    not (pyshacl's own ``focus_nodes`` option would filter those too, and change results).
    """
    global _FOCUS
    if nodes is not None and not getattr(Shape.focus_nodes, "_mg_rdf", False):
        original = Shape.focus_nodes

        def focus_nodes(self, data_graph, debug=False):   # type: ignore[no-untyped-def]
            found = original(self, data_graph, debug=debug)
            return found if _FOCUS is None else {n for n in found if n in _FOCUS}

        focus_nodes._mg_rdf = True   # type: ignore[attr-defined]
        Shape.focus_nodes = focus_nodes   # type: ignore[method-assign]
    _FOCUS = nodes


CHUNK = 2000   # entities per pyshacl run: bounds a worker's memory on a large corpus


def _jobs(entities: Sequence[MappedEntity]) -> list[tuple[tuple[str, ...], int]]:
    """(partition, chunk number) pairs covering every entity."""
    jobs = []
    for types in PARTITIONS:
        n = sum(1 for e in entities if e.type in types)
        jobs += [(types, k) for k in range(max(1, -(-n // CHUNK)))]
    return jobs


def _validate_partition(types: tuple[str, ...], base: str, want_report: bool,
                        chunk: int = 0) -> tuple[list[Problem], str | None, float]:
    """One partition chunk's problems, its report (N-Triples) if asked, and the seconds it took."""
    t0 = time.perf_counter()
    problems, report = _validate_chunk(types, base, want_report, chunk)
    return problems, report, time.perf_counter() - t0


def _validate_chunk(types: tuple[str, ...], base: str, want_report: bool,
                    chunk: int) -> tuple[list[Problem], str | None]:
    assert _JOB is not None
    entities, index = _JOB
    iris = DataIris(base)
    mine = sorted((e for e in entities if e.type in types), key=lambda e: e.id)[chunk * CHUNK:(chunk + 1) * CHUNK]
    if not mine:
        return [], None
    data, focus = _data_graph(mine, index, iris)
    conforms, results = run_shacl(data, focus, types)
    report = results.serialize(format="nt") if want_report else None
    if conforms:
        return [], report
    return _problems(results, {e.iri.value: e for e in mine}, iris), report


@dataclass
class ShaclOutcome:
    problems: list[Problem]
    report: Graph | None      # the SHACL validation report, when asked for
    seconds: float = 0.0      # wall time of the validation work itself (workers run in parallel)


SMALL = 50


class PendingValidation:
    """SHACL running in worker processes while the caller does other work (the load)."""

    def __init__(self, entities: Sequence[MappedEntity], index: CorpusIndex, iris: DataIris,
                 workers: int | None, want_report: bool, busy_caller: bool = False):
        """``workers``: processes (1: in this process, before returning); by default one per core,
        or with ``busy_caller`` (the caller loads the store meanwhile) one per core but one, and
        at least one: on two cores, three busy processes made the load wait as long as SHACL."""
        global _JOB
        self.want_report = want_report
        cores = os.cpu_count() or 1
        in_process = workers == 1 or len(entities) < SMALL   # a few entities: a process costs more than it saves
        if workers is None:
            workers = max(1, cores - 1) if busy_caller else cores
        n = 1 if in_process else min(len(PARTITIONS), workers)
        _JOB = (list(entities), index)
        self.pool: ProcessPoolExecutor | None = None
        self.pool_size = n
        if in_process:
            try:
                self.parts = [_validate_partition(t, iris.base, want_report, k) for t, k in _jobs(entities)]
            finally:
                _JOB = None
            return
        try:
            self.pool = forked_pool(n)   # the workers inherit _JOB instead of receiving it pickled
            self.futures = [self.pool.submit(_validate_partition, t, iris.base, want_report, k)
                            for t, k in _jobs(entities)]
        finally:
            _JOB = None

    def result(self) -> ShaclOutcome:
        if self.pool is not None:
            try:
                self.parts = [f.result() for f in self.futures]
            finally:
                self.pool.shutdown()
                self.pool = None
        report = _merge_reports([r for _, r, _ in self.parts if r is not None]) if self.want_report else None
        # about the busiest worker's time (chunks go to whichever worker is free)
        times = [t for _, _, t in self.parts]
        busy = max(max(times, default=0.0), sum(times) / self.pool_size)
        return ShaclOutcome([p for ps, _, _ in self.parts for p in ps], report, busy)

    def cancel(self) -> None:
        if self.pool is not None:
            kill_pool(self.pool)
            self.pool = None


def validate(entities: Sequence[MappedEntity], index: CorpusIndex, iris: DataIris,
             workers: int | None = None, want_report: bool = False) -> ShaclOutcome:
    """SHACL problems of ``entities`` (those loaded), in the editor's terms."""
    return PendingValidation(entities, index, iris, workers, want_report).result()


def _merge_reports(reports: list[str]) -> Graph:
    """One sh:ValidationReport from the partitions' reports."""
    g = Graph()
    for text in reports:
        g.parse(data=text, format="nt")
    node_reports = list(g.subjects(RDF.type, SH.ValidationReport))
    if len(node_reports) > 1:
        keep = node_reports[0]
        conforms = all(g.value(r, SH.conforms) == RLiteral(True) for r in node_reports)
        for r in node_reports[1:]:
            for _, p, o in list(g.triples((r, None, None))):
                g.remove((r, p, o))
                if p == SH.result:
                    g.add((keep, p, o))
        g.set((keep, SH.conforms, RLiteral(conforms)))
    g.bind("sh", SH)
    g.bind("mg", MG)
    return g


def _problems(results: Graph, by_iri: dict[str, MappedEntity], iris: DataIris) -> list[Problem]:
    out = []
    for r in results.subjects(RDF.type, SH.ValidationResult):
        focus = str(results.value(r, SH.focusNode))
        path = results.value(r, SH.resultPath)
        value = results.value(r, SH.value)
        message = str(results.value(r, SH.resultMessage) or "does not conform")
        severity = results.value(r, SH.resultSeverity)
        entity_iri, _, fragment = focus.partition("#")
        e = by_iri.get(entity_iri)
        if e is None:
            continue
        prop = str(path).removeprefix(MG) if path is not None else None
        field = _field_path(e, fragment, prop, value, iris)
        shown = _show(value, iris)
        sev = Severity.VIOLATION if severity == SH.Violation else (
            Severity.WARNING if severity == SH.Warning else Severity.INFO)
        out.append(Problem(e.path, e.lines_of(field) if field else None, field, message, shown, sev, "shacl"))
    return out


def _field_path(e: MappedEntity, fragment: str, prop: str | None, value: object, iris: DataIris) -> str | None:
    if fragment:
        kind, _, n = fragment.rpartition("-")
        field, names = _PART_FIELDS.get(kind, (kind, {}))
        base = f"{field}[{int(n) - 1}]" if n.isdigit() else field
        return f"{base}.{names.get(prop or '', prop)}" if prop else base
    if prop is None:
        return None
    field = _FIELD_OF.get((e.type, prop), prop)
    if isinstance(value, URIRef):
        target = iris.entity_id_of(str(value))
        for ref in e.references:
            if ref.target_id == target and ref.prop == prop:
                return ref.field
    return field


def _show(value: object, iris: DataIris) -> str | None:
    if value is None:
        return None
    if isinstance(value, URIRef):
        s = str(value)
        return iris.entity_id_of(s) or s.removeprefix(MG)
    return str(value)


def triples_to_rdflib(triples: Sequence[Triple]) -> Graph:
    """An rdflib graph of pyoxigraph triples (used by tests and the report writer)."""
    g = Graph()
    for t in triples:
        g.add((_to_rdflib(t.subject), _to_rdflib(t.predicate), _to_rdflib(t.object)))
    return g
