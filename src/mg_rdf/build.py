"""The build pipeline: read -> parse -> map -> check -> validate -> load -> swap.

``analyse`` turns a corpus source into mapped entities plus every problem found
(what ``mg-rdf validate`` reports); ``build`` also loads them into a new
Oxigraph store and swaps it in. Both time each stage, for the summary line and
the benchmarks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import BlankNode, NamedNode, Quad, RdfFormat, parse

from .config import ONTOLOGY_PATH, SHAPES_PATH
from .assembly import entity_graphs, tag_labels, vocabulary_graph
from .dataset import CORPUS_TITLE, DatasetFacts, build_graph, dataset_graph
from .integrity import CorpusIndex, check
from .mapping import MappedEntity, map_entity
from .problems import MgRdfError, Problem, Severity
from .reader import read_entity
from .schema import TYPES
from . import manifest
from .source import CorpusSource, SourceFile
from .store import current_build, new_build
from .validation import PendingValidation, ShaclOutcome, validate
from .vocab import ONTOLOGY_IRI, SHAPES_IRI, DataIris


Progress = Callable[[str, int, int], None]   # (stage, done, total)


@dataclass
class Analysis:
    source: CorpusSource
    iris: DataIris
    entities: list[MappedEntity] = field(default_factory=list)
    index: CorpusIndex | None = None
    problems: list[Problem] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: int = 0
    shacl_report: object | None = None
    # path -> (entity, its read+map problems): what the manifest of this build records
    entries: dict[str, tuple[MappedEntity, list[Problem]]] = field(default_factory=dict)
    cached_shacl: dict[str, list[Problem]] = field(default_factory=dict)
    shacl_by_path: dict[str, list[Problem]] = field(default_factory=dict)

    def shacl_changed(self, path: str) -> bool:
        return self.shacl_by_path.get(path, []) != self.cached_shacl.get(path, [])

    def to_validate(self) -> list[MappedEntity]:
        """The loaded entities SHACL must look at: all but the unchanged ones."""
        assert self.index is not None
        return [e for e in self.index.by_id.values() if not e.stub]

    def take_shacl(self, outcome: "ShaclOutcome") -> None:
        fresh = _without_duplicates(outcome, self.problems)
        for p in fresh:
            self.shacl_by_path.setdefault(p.path, []).append(p)
        assert self.index is not None
        for e in self.index.by_id.values():
            if e.stub:
                cached = self.cached_shacl.get(e.path, [])
                self.shacl_by_path[e.path] = cached
                self.problems.extend(cached)
        self.problems.extend(fresh)

    def count(self, severity: Severity) -> int:
        return sum(1 for p in self.problems if p.severity is severity)

    @property
    def violations(self) -> int:
        return self.count(Severity.VIOLATION)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    def sorted_problems(self) -> list[Problem]:
        return sorted(set(self.problems), key=lambda p: (p.path, p.line or 0, p.field or "", p.message))


class _Timer:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    def __call__(self, stage: str) -> "_Stage":
        return _Stage(self.seconds, stage)


class _Stage:
    def __init__(self, seconds: dict[str, float], name: str):
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - self.t0


def analyse(source: CorpusSource, iris: DataIris, *, shacl: bool = True, workers: int | None = None,
            want_report: bool = False, progress: Progress | None = None,
            previous: dict[str, dict] | None = None) -> Analysis:
    """Read, parse, map and check a corpus; run SHACL unless ``shacl`` is False.

    With ``previous`` (the manifest entries of the last build, by path), files whose
    blob is unchanged are not parsed again: their references, tags and problems come
    from the manifest. Entities that point at an id whose existence or type changed
    are mapped again, since their reverse links and SHACL results depend on it.
    """
    a = Analysis(source, iris)
    timer = _Timer(a.seconds)
    with timer("read"):
        files = {f.path: f for f in source.entity_files()}
    a.files = len(files)
    a.problems.extend(source.problems)
    cached_shacl: dict[str, list[Problem]] = {}

    def fresh(f: SourceFile) -> MappedEntity | None:
        result = read_entity(f)
        a.problems.extend(result.problems)
        if result.record is None:
            return None
        m = map_entity(result.record, iris)
        m.source_data = f.data
        a.problems.extend(m.problems)
        a.entries[f.path] = (m, [*result.problems, *m.problems])
        return m if m.type in TYPES else None

    by_path: dict[str, MappedEntity] = {}
    with timer("parse"):  # parse and map, per file
        for i, (path, f) in enumerate(sorted(files.items())):
            old = previous.get(path) if previous else None
            if old is not None and old["blob"] == f.blob:
                m, problems, shacl_problems = manifest.stub(path, old, iris)
                a.problems.extend(problems)
                a.entries[path] = (m, problems)
                cached_shacl[path] = shacl_problems
                if m.type in TYPES:
                    by_path[path] = m
            elif (m := fresh(f)) is not None:
                by_path[path] = m
            if progress and i % 50 == 0:
                progress("parse", i, len(files))
    with timer("map"):
        a.index = CorpusIndex(by_path.values())
        if previous is not None:
            for path in _affected_stubs(a.index, previous):
                cached_shacl.pop(path, None)
                a.problems = [p for p in a.problems if p.path != path]
                m = fresh(files[path])
                if m is not None:
                    by_path[path] = m
            a.index = CorpusIndex(by_path.values())
        a.entities = list(by_path.values())
        a.problems.extend(check(a.index))
    a.cached_shacl = cached_shacl
    if shacl:
        with timer("validate"):
            outcome = validate(a.to_validate(), a.index, iris, workers, want_report)
            a.take_shacl(outcome)
            a.shacl_report = outcome.report
    return a


def _affected_stubs(index: CorpusIndex, previous: dict[str, dict]) -> list[str]:
    """Paths of unchanged files whose graph or SHACL result depends on an id that changed:
    appeared, disappeared, changed type, or moved to another file."""
    before: dict[str, tuple[str, str]] = {}
    for path in sorted(previous):
        item = previous[path]
        before.setdefault(item["id"], (item["type"], path))
    now = {eid: (e.type, e.path) for eid, e in index.by_id.items()}
    delta = {eid for eid in before.keys() | now.keys() if before.get(eid) != now.get(eid)}
    out = []
    for e in index.by_id.values():
        if not e.stub:
            continue
        if e.id in delta or any(r.target_id in delta for r in (*e.references, *e.mentions)):
            out.append(e.path)
    for first, dup in index.duplicates:  # a stub that now loses (or wins) a duplicate id
        if dup.stub and dup.id in delta:
            out.append(dup.path)
    return sorted(set(out))


def _without_duplicates(outcome: ShaclOutcome, known: list[Problem]) -> list[Problem]:
    """SHACL results that say again what an integrity check said more precisely are dropped."""
    said = {(p.path, p.field, p.value) for p in known if p.rule in ("dangling-reference", "reference-type")}
    return [p for p in outcome.problems if (p.path, p.field, p.value) not in said]


@dataclass
class BuildResult:
    analysis: Analysis
    store_path: Path
    triples: int
    entities_by_type: Counter[str]
    seconds: dict[str, float]
    wall: float          # end-to-end seconds (validation overlaps the load)
    incremental: bool = False   # built on the previous store, re-reading only changed files
    rebuilt: int = 0            # entities mapped and validated again


class BuildRefused(MgRdfError):
    """A --strict build found problems; the previous store keeps serving."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        super().__init__(f"build refused under --strict: {analysis.violations} violation(s), "
                         f"{analysis.warnings} warning(s); the previous store is unchanged")


def _static_graph(path: Path, graph: str) -> Iterator[Quad]:
    """A Turtle file as one named graph, its blank nodes relabelled in file order so that two
    builds store (and dump) the same labels."""
    g = NamedNode(graph)
    labels: dict[str, BlankNode] = {}
    prefix = "o" if graph == ONTOLOGY_IRI else "s"

    def stable(term):
        if isinstance(term, BlankNode):
            node = labels.get(term.value)
            if node is None:
                node = labels[term.value] = BlankNode(f"{prefix}{len(labels) + 1}")
            return node
        return term

    with open(path, "rb") as fh:
        for q in parse(fh, format=RdfFormat.TURTLE, base_iri=graph):
            yield Quad(stable(q.subject), q.predicate, stable(q.object), g)


def _input_date(a: Analysis) -> str | None:
    """When the input was last changed: the commit date, or the newest last_updated."""
    if a.source.provenance.commit_date:
        return a.source.provenance.commit_date
    assert a.index is not None
    dates = [e.last_updated for e in a.index.by_id.values() if e.last_updated]
    return max(dates) if dates else None


def build(source: CorpusSource, store_path: Path, iris: DataIris, *, strict: bool = False,
          workers: int | None = None, title: str = CORPUS_TITLE, full: bool = False,
          progress: Progress | None = None) -> BuildResult:
    """Build ``source`` into a new store at ``store_path`` and swap it in when complete.

    When the store already holds a build of the same corpus made by the same code,
    only files whose content changed are read again, only what they touch is
    validated again, and the new store is the previous one (a hard-linked copy)
    with those files' graphs replaced. ``full=True`` rebuilds everything.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    fp = manifest.fingerprint(iris, source.provenance)
    prev_dir = current_build(store_path) if store_path.is_dir() else None
    previous = None if full or prev_dir is None else manifest.read(manifest.manifest_path(prev_dir), fp)
    a = analyse(source, iris, shacl=False, progress=progress, previous=previous)
    if not a.index or not a.index.by_id:
        raise MgRdfError(f"{source.provenance.location}: no entity could be read; the previous store is unchanged")
    timer = _Timer(a.seconds)
    by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
    fresh_ids = {e.id for e in a.to_validate()}
    # SHACL runs in worker processes while this process loads the store.
    t_validate = time.perf_counter()
    pending = PendingValidation(a.to_validate(), a.index, iris, workers, False)
    try:
        with new_build(store_path) as nb:
            with timer("load"):
                if previous is not None and prev_dir is not None:
                    store = nb.open_copy(prev_dir)
                    for g in _graphs_to_replace(previous, a, iris):
                        store.remove_graph(g)
                    _replace_vocabulary(store, a, previous, iris)
                    store.extend(_changed_quads(a, source, iris, fresh_ids))  # small: one transaction
                else:
                    store = nb.open()
                    nb.load(_all_quads(a, source, iris))
                for e in a.index.by_id.values():
                    if not e.stub:
                        nb.keep_source(e.blob, e.source_data)
            a.take_shacl(pending.result())
            a.seconds["validate"] = time.perf_counter() - t_validate
            if strict and (a.violations or a.warnings):
                raise BuildRefused(a)
            with timer("load"):
                triples = len(store)
                facts = DatasetFacts(source.provenance, title, by_type, triples, _input_date(a))
                meta = dataset_graph(facts, iris)
                meta += build_graph(iris, started, time.perf_counter() - t0, a.warnings, a.violations)
                nb.load(meta)
                path = nb.commit(on_complete=lambda final: manifest.write(
                    manifest.manifest_path(final), fp, _entries(a, previous)),
                    blobs_of=manifest.blobs_of, optimize=previous is None)
    finally:
        pending.cancel()
    return BuildResult(a, path, triples, by_type, a.seconds, time.perf_counter() - t0,
                       incremental=previous is not None, rebuilt=len(fresh_ids))


def _meta_graphs(iris: DataIris) -> list[NamedNode]:
    """The dataset description and build record: every build writes them anew."""
    return [NamedNode(iris.dataset_graph), NamedNode(iris.base + "graph/build")]


def _graphs_to_replace(previous: dict[str, dict], a: Analysis, iris: DataIris) -> list[NamedNode]:
    """Graphs of the previous build that this build writes anew: entity graphs whose file
    changed, went away, or lost its id to another file; and the derived graphs."""
    assert a.index is not None
    kept = {eid for eid, e in a.index.by_id.items() if e.stub}
    old_ids = {item["id"] for item in previous.values()}
    return [NamedNode(iris.graph(eid)) for eid in sorted(old_ids - kept)] + _meta_graphs(iris)


def _replace_vocabulary(store, a: Analysis, previous: dict[str, dict], iris: DataIris) -> None:
    """Rewrite the tag scheme graph only when the tags in use changed (they rarely do)."""
    assert a.index is not None
    now = tag_labels(((e.id, e.tags) for e in a.index.by_id.values()), iris)
    winners: dict[str, list[str]] = {}
    for path in sorted(previous):
        item = previous[path]
        if item["type"] in TYPES:
            winners.setdefault(item["id"], item["tags"])
    if tag_labels(winners.items(), iris) == now:
        return
    store.remove_graph(NamedNode(iris.vocabulary_graph))
    store.extend(vocabulary_graph(a.index, iris, now))


def _changed_quads(a: Analysis, source: CorpusSource, iris: DataIris, fresh_ids: set[str]) -> Iterator[Quad]:
    assert a.index is not None
    for eg in entity_graphs(a.index, source.provenance, iris, only=fresh_ids):
        yield from eg.quads


def _entries(a: Analysis, previous: dict[str, dict] | None) -> dict[str, dict]:
    """The manifest of this build: unchanged files keep their previous entry as it was."""
    out = {}
    for path, (m, problems) in a.entries.items():
        if m.stub and previous is not None and path in previous and not a.shacl_changed(path):
            out[path] = previous[path]
        else:
            out[path] = manifest.entry(m, problems, a.shacl_by_path.get(path, []))
    return out


def _all_quads(a: Analysis, source: CorpusSource, iris: DataIris) -> Iterator[Quad]:
    assert a.index is not None
    for eg in entity_graphs(a.index, source.provenance, iris):
        yield from eg.quads
    yield from vocabulary_graph(a.index, iris)
    yield from _static_graph(ONTOLOGY_PATH, ONTOLOGY_IRI)
    yield from _static_graph(SHAPES_PATH, SHAPES_IRI)
