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

from .audit_cache import AuditOutcome, audit_pass
from .config import ONTOLOGY_FILES, SHAPES_FILES
from .wikidata_links import LINKS_PATH, link_problems, linkset_graph, sameas_quads
from .assembly import entity_graphs, tag_labels, vocabulary_graph
from .dataset import CORPUS_TITLE, DatasetFacts, build_graph, dataset_graph
from .integrity import CorpusIndex, check
from .mapping import MappedEntity, map_entity
from .problems import MgRdfError, Problem, Severity
from .reader import read_entity
from .schema import TYPES
from . import manifest, pins
from .source import CorpusSource, SourceFile
from .store import StoreWriter, current_build, new_build
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
    audits: AuditOutcome = field(default_factory=AuditOutcome)

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
            previous: dict[str, dict] | None = None,
            previous_audits: dict[str, dict] | None = None) -> Analysis:
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
        t = time.perf_counter()
        result = read_entity(f)
        a.seconds["parse"] = a.seconds.get("parse", 0.0) + time.perf_counter() - t
        a.problems.extend(result.problems)
        if result.record is None:
            return None
        t = time.perf_counter()
        m = map_entity(result.record, iris)
        a.seconds["map"] = a.seconds.get("map", 0.0) + time.perf_counter() - t
        m.source_data = f.data
        a.problems.extend(m.problems)
        a.entries[f.path] = (m, [*result.problems, *m.problems])
        return m if m.type in TYPES else None

    by_path: dict[str, MappedEntity] = {}
    a.seconds["parse"] = a.seconds["map"] = 0.0   # accumulated per file by fresh()
    with timer("stubs"):  # the files left: unchanged since the previous build (their time, minus fresh's)
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
    a.seconds["stubs"] -= a.seconds["parse"] + a.seconds["map"]
    with timer("check"):
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
        a.problems.extend(link_problems(a.index, LINKS_PATH))
    with timer("audits"):   # only the audits whose file or looked-up entities changed are read again
        a.audits = audit_pass(source, a.index, iris, previous_audits)
        a.problems.extend(a.audits.problems)
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


def _static_graph(path: Path, graph: str, prefix: str) -> Iterator[Quad]:
    """A Turtle file into a named graph, its blank nodes relabelled ``{prefix}1``… in file order
    so that two builds store (and dump) the same labels."""
    g = NamedNode(graph)
    labels: dict[str, BlankNode] = {}

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


def _vocabularies() -> Iterator[Quad]:
    """The ontology files into the ontology graph and the shapes files into the shapes graph."""
    for i, path in enumerate(ONTOLOGY_FILES):
        yield from _static_graph(path, ONTOLOGY_IRI, f"o{i}_" if i else "o")
    for i, path in enumerate(SHAPES_FILES):
        yield from _static_graph(path, SHAPES_IRI, f"s{i}_" if i else "s")


def _input_date(a: Analysis) -> str | None:
    """When the input was last changed: the commit date, or the newest last_updated."""
    if a.source.provenance.commit_date:
        return a.source.provenance.commit_date
    assert a.index is not None
    dates = [e.last_updated for e in a.index.by_id.values() if e.last_updated]
    return max(dates) if dates else None


@dataclass
class PinLoad:
    """One pin loaded into its database (not yet swapped in)."""

    analysis: Analysis
    triples: int
    by_type: Counter[str]
    fingerprint: str
    previous: dict[str, dict] | None    # the manifest entries it was built on, when incremental
    rebuilt: int
    seconds: float

    def manifest_entries(self) -> dict[str, dict]:
        return _entries(self.analysis, self.previous)


def build(source: CorpusSource, store_path: Path, iris: DataIris, *, strict: bool = False,
          workers: int | None = None, title: str = CORPUS_TITLE, full: bool = False,
          progress: Progress | None = None) -> BuildResult:
    """Build ``source`` into a new store at ``store_path`` and swap it in when complete.

    When the store already holds a build of the same corpus made by the same code,
    only files whose content changed are read again, only what they touch is
    validated again, and the new store is the previous one (a hard-linked copy)
    with those files' graphs replaced. ``full=True`` rebuilds everything.
    """
    t0 = time.perf_counter()
    prev_dir = current_build(store_path) if store_path.is_dir() else None
    with new_build(store_path) as nb:
        pin = load_pin(nb.main, nb.keep_source, source, iris, previous_build_for(prev_dir, source),
                       strict=strict, workers=workers, title=title, full=full, progress=progress)
        path = nb.commit(on_complete=lambda final: manifest.write(
            manifest.manifest_path(final), pin.fingerprint, pin.manifest_entries(), pin.analysis.audits.entries),
            blobs_of=blobs_of_build, optimize=pin.previous is None)
    return BuildResult(pin.analysis, path, pin.triples, pin.by_type, pin.analysis.seconds,
                       time.perf_counter() - t0, incremental=pin.previous is not None, rebuilt=pin.rebuilt)


def build_remote(source: CorpusSource, url: str, iris: DataIris, *, strict: bool = False,
                 workers: int | None = None, title: str = CORPUS_TITLE,
                 progress: Progress | None = None) -> BuildResult:
    """Build ``source`` into a remote SPARQL store: everything in memory, validated, then the
    whole dataset replaced by ONE update request (atomic where the server runs an update as
    one transaction: Oxigraph, Fuseki, GraphDB). Always a full build."""
    from .remote import RemoteStore

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    a = analyse(source, iris, workers=workers, progress=progress)
    if not a.index or not a.index.by_id:
        raise MgRdfError(f"{source.provenance.location}: no entity could be read; the remote store is unchanged")
    if strict and (a.violations or a.warnings):
        raise BuildRefused(a)
    remote = RemoteStore(url)
    timer = _Timer(a.seconds)
    with timer("load"):
        quads = list(_all_quads(a, source, iris))
        by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
        facts = DatasetFacts(source.provenance, title, by_type, len(set(quads)), _input_date(a))
        meta = dataset_graph(facts, iris) + build_graph(iris, started, time.perf_counter() - t0, a.warnings,
                                                        a.violations)
        meta += sameas_quads(a.index, iris, LINKS_PATH)
        old = list(remote.named_graphs())   # graphs of the previous build that this one does not write
        sent = remote.replace_graphs(old, quads + meta, timeout=600)
    return BuildResult(a, url, sent, by_type, a.seconds, time.perf_counter() - t0)  # type: ignore[arg-type]


def previous_build_for(prev_dir: Path | None, source: CorpusSource) -> Path | None:
    """The database of the previous build to start from: the pin of the same commit when the
    previous build has several pins, else its current one (the manifest decides if it fits)."""
    if prev_dir is None:
        return None
    index = pins.read_index(prev_dir)
    commit = source.provenance.commit
    if index is not None and commit:
        for p in index.pins:
            if p.commit == commit and index.directory(p).is_dir():
                return index.directory(p)
    return prev_dir


def blobs_of_build(build_dir: Path) -> set[str] | None:
    """The git blobs every pin of a build read (None when a manifest is missing)."""
    blobs = manifest.blobs_of(build_dir)
    index = pins.read_index(build_dir)
    if blobs is None or index is None:
        return blobs
    for p in index.pins:
        if p.current:
            continue
        more = manifest.blobs_of(index.directory(p))
        if more is None:
            return None
        blobs |= more
    return blobs


def load_pin(writer: StoreWriter, keep_source: Callable[[str, bytes], None], source: CorpusSource,
             iris: DataIris, previous_dir: Path | None, *, strict: bool = False, workers: int | None = None,
             title: str = CORPUS_TITLE, full: bool = False, progress: Progress | None = None) -> PinLoad:
    """Analyse ``source`` and write it into ``writer``'s database: a copy of ``previous_dir``
    with the changed files' graphs replaced when its manifest fits, else a full load."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    fp = manifest.fingerprint(iris, source.provenance)
    whole = None if full or previous_dir is None else manifest.read_all(manifest.manifest_path(previous_dir), fp)
    previous = None if whole is None else whole["entities"]
    a = analyse(source, iris, shacl=False, progress=progress, previous=previous,
                previous_audits=None if whole is None else whole.get("audits"))
    if not a.index or not a.index.by_id:
        raise MgRdfError(f"{source.provenance.location}: no entity could be read; the previous store is unchanged")
    timer = _Timer(a.seconds)
    by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
    fresh_ids = {e.id for e in a.to_validate()}
    # SHACL runs in worker processes while this process loads the store.
    t_validate = time.perf_counter()
    pending = PendingValidation(a.to_validate(), a.index, iris, workers, False)
    try:
        with timer("load"):
            if previous is not None and previous_dir is not None:
                store = writer.open_copy(previous_dir)
                for g in _graphs_to_replace(previous, a, iris):
                    store.remove_graph(g)
                _replace_vocabulary(store, a, previous, iris)
                _replace_audits(store, a)
                store.extend(_changed_quads(a, source, iris, fresh_ids))  # small: one transaction
            else:
                store = writer.open()
                writer.load(_all_quads(a, source, iris))
            for e in a.index.by_id.values():
                if not e.stub:
                    keep_source(e.blob, e.source_data)
        a.take_shacl(pending.result())
        a.seconds["validate"] = time.perf_counter() - t_validate
        if strict and (a.violations or a.warnings):
            raise BuildRefused(a)
        with timer("load"):
            triples = len(store)
            facts = DatasetFacts(source.provenance, title, by_type, triples, _input_date(a))
            meta = dataset_graph(facts, iris)
            meta += build_graph(iris, started, time.perf_counter() - t0, a.warnings, a.violations)
            meta += sameas_quads(a.index, iris, LINKS_PATH)
            writer.load(meta)
    finally:
        pending.cancel()
    return PinLoad(a, triples, by_type, fp, previous, len(fresh_ids), time.perf_counter() - t0)


def _meta_graphs(iris: DataIris) -> list[NamedNode]:
    """The dataset description, build record and renames: every build writes them anew."""
    return [NamedNode(iris.dataset_graph), NamedNode(iris.base + "graph/build"), NamedNode(iris.base + "graph/renames"),
            NamedNode(linkset_graph(iris))]


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
    winners: dict[str, list[str]] = {}   # the tags of each id in the previous build (first file wins)
    for path in sorted(previous):
        item = previous[path]
        if item["type"] in TYPES:
            winners.setdefault(item["id"], item["tags"])
    if winners.keys() == a.index.by_id.keys() and all(
            e.stub or e.tags == winners[eid] for eid, e in a.index.by_id.items()):
        return   # the same entities, and the re-read ones kept their tags: the scheme is the same
    now = tag_labels(((e.id, e.tags) for e in a.index.by_id.values()), iris)
    if tag_labels(winners.items(), iris) == now:
        return
    store.remove_graph(NamedNode(iris.vocabulary_graph))
    store.extend(vocabulary_graph(a.index, iris, now))


def _replace_audits(store, a: Analysis) -> None:
    """Replace the graphs of the audits read again (most builds: none)."""
    for g in sorted(a.audits.drop, key=str):
        store.remove_graph(g)
    store.extend(a.audits.quads)


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
    yield from a.audits.quads
    yield from _vocabularies()
