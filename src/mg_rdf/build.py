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
from .assembly import entity_graphs, vocabulary_graph
from .dataset import CORPUS_TITLE, DatasetFacts, build_graph, dataset_graph
from .integrity import CorpusIndex, check
from .mapping import MappedEntity, map_entity
from .problems import MgRdfError, Problem, Severity
from .reader import read_entity
from .schema import TYPES
from .source import CorpusSource
from .store import new_build
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
            want_report: bool = False, progress: Progress | None = None) -> Analysis:
    """Read, parse, map and check a corpus; run SHACL unless ``shacl`` is False."""
    a = Analysis(source, iris)
    timer = _Timer(a.seconds)
    with timer("read"):
        files = list(source.entity_files())
    a.files = len(files)
    a.problems.extend(source.problems)
    records = []
    with timer("parse"):
        for i, f in enumerate(files):
            result = read_entity(f)
            a.problems.extend(result.problems)
            if result.record is not None:
                records.append(result.record)
            if progress and i % 50 == 0:
                progress("parse", i, len(files))
    with timer("map"):
        for record in records:
            m = map_entity(record, iris)
            a.problems.extend(m.problems)
            if m.type in TYPES:
                a.entities.append(m)
        a.index = CorpusIndex(a.entities)
        a.problems.extend(check(a.index))
    if shacl:
        with timer("validate"):
            outcome = validate(list(a.index.by_id.values()), a.index, iris, workers, want_report)
            a.problems.extend(_without_duplicates(outcome, a.problems))
            a.shacl_report = outcome.report
    return a



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
    newest = None
    for e in a.entities:
        for t in e.triples:
            if t.subject == e.iri and t.predicate.value.endswith("#lastUpdated"):
                v = t.object.value
                newest = v if newest is None or v > newest else newest
    return newest


def build(source: CorpusSource, store_path: Path, iris: DataIris, *, strict: bool = False,
          workers: int | None = None, title: str = CORPUS_TITLE,
          progress: Progress | None = None) -> BuildResult:
    """Build ``source`` into a new store at ``store_path`` and swap it in when complete."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    a = analyse(source, iris, shacl=False, progress=progress)
    if not a.entities:
        raise MgRdfError(f"{source.provenance.location}: no entity could be read; the previous store is unchanged")
    assert a.index is not None
    timer = _Timer(a.seconds)
    by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
    # SHACL runs in worker processes while this process loads the store.
    t_validate = time.perf_counter()
    pending = PendingValidation(list(a.index.by_id.values()), a.index, iris, workers, False)
    try:
        with new_build(store_path) as nb:
            with timer("load"):
                store = nb.open()
                load_problems: list[Problem] = []

                def quads() -> Iterator[Quad]:
                    for eg in entity_graphs(a.index, source.provenance, iris, load_problems):
                        yield from eg.quads
                    yield from vocabulary_graph(a.index, iris)
                    yield from _static_graph(ONTOLOGY_PATH, ONTOLOGY_IRI)
                    yield from _static_graph(SHAPES_PATH, SHAPES_IRI)

                nb.load(quads())
                a.problems.extend(load_problems)
                for e in a.index.by_id.values():
                    nb.keep_source(e.id, e.source_text.encode("utf-8"))
            outcome = pending.result()
            a.seconds["validate"] = time.perf_counter() - t_validate
            a.problems.extend(_without_duplicates(outcome, a.problems))
            if strict and (a.violations or a.warnings):
                raise BuildRefused(a)
            with timer("load"):
                triples = len(store)
                facts = DatasetFacts(source.provenance, title, by_type, triples, _input_date(a))
                meta = dataset_graph(facts, iris)
                meta += build_graph(iris, started, time.perf_counter() - t0, a.warnings, a.violations)
                nb.load(meta)
                path = nb.commit()
    finally:
        pending.cancel()
    return BuildResult(a, path, triples, by_type, a.seconds, time.perf_counter() - t0)
