"""The build: an analysed corpus loaded into a new Oxigraph store and swapped in.

``build`` writes a new store (or a hard-linked copy of the previous one with the
changed files' graphs replaced) and swaps it in atomically; ``build_remote``
sends it to a SPARQL server in one update request. The analysis itself (read,
parse, map, checks, audits, SHACL) is ``analysis.analyse``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pyoxigraph import BlankNode, Literal, NamedNode, Quad, RdfFormat, Store, parse

from . import manifest, pins
from .analysis import Analysis, Progress, _Timer, analyse
from .assembly import entity_graphs, tag_labels, vocabulary_graph
from .config import ONTOLOGY_FILES, SHAPES_FILES
from .dataset import CORPUS_TITLE, DatasetFacts, build_graph, dataset_graph
from .problems import MgRdfError
from .schema import TYPES
from .source import CorpusSource
from .store import StoreWriter, WorkingCopy, build_lock, current_build, new_build
from .validation import PendingValidation
from .vocab import ONTOLOGY_IRI, SHAPES_IRI, DataIris
from .wikidata_links import LINKS_PATH, linkset_graph, sameas_quads
from .workers import without_cyclic_collection

__all__ = ["Analysis", "BuildRefused", "BuildResult", "analyse", "build", "build_remote", "load_pin"]


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
    swapped: float | None = None   # seconds from the start until STORE/current named this build
    sent: int | None = None     # remote store: quads sent (the changed graphs and the build record)
    graphs_sent: int = 0        # remote store: named graphs sent again, of ``graphs`` (build record apart)
    graphs: int = 0


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

    def encode_manifest(self) -> manifest.Encoded:
        """The manifest of this pin's database, for the next build to start from."""
        return manifest.Encoded(self.fingerprint, self.manifest_entries(),
                                with_stats(self.analysis.audits.entries, self.analysis.source), self.triples)

    def write_manifest(self, build_dir: Path) -> dict[str, Any]:
        """Write the manifest beside the database ``build_dir``."""
        return self.encode_manifest().write(manifest.manifest_path(build_dir))


class _Thread(threading.Thread):
    """``work`` in a thread of its own, started at once; ``result`` waits for it and returns what
    it returned, or raises what it raised."""

    def __init__(self, work: Callable[[], Any], name: str):
        super().__init__(name=name, daemon=True)
        self._work, self._value, self._error = work, None, None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as e:   # noqa: BLE001 - handed to the caller by result()
            self._error = e

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Encoding(_Thread):
    """A pin's manifest encoded in a thread while the database is flushed (and a working copy
    checkpointed): Oxigraph lets go of the GIL meanwhile, so pickling (~15-20 ms) costs no time.
    The thread waits for ``go`` (set just before the flush): pickling does not let go of the
    GIL, so started any earlier it would hold the build's thread up instead."""

    def __init__(self, pin: PinLoad):
        self.pin = pin
        self.go = threading.Event()
        super().__init__(self._encode, "mg-rdf-manifest")

    def _encode(self) -> manifest.Encoded:
        self.go.wait()
        return self.pin.encode_manifest()

    def result(self) -> manifest.Encoded:
        self.go.set()
        return super().result()


class BuildMemory:
    """What a long-running builder (``serve --watch``) keeps between its builds of one store: the
    last build it made, that build's manifest as written, a working copy of its database kept
    open (store.WorkingCopy), and the manifest entries it turned into entities.

    Trusted only for the build it was made by: when ``STORE/current`` (or the pin the next
    build starts from) is another build — another process built meanwhile — or the code,
    shapes or provenance changed, the next build reads the manifest from disk and copies that
    build as any build does. A build that fails drops everything (its working copy may be
    half-changed); only a completed one is remembered."""

    def __init__(self) -> None:
        self.build_dir: Path | None = None
        self.fingerprint: str | None = None
        self.manifest: dict[str, Any] | None = None
        self.copy: WorkingCopy | None = None
        self.stubs: dict[str, tuple] = {}   # path -> (base, manifest entry, its stub): see analysis.analyse

    def recall(self, store_path: Path, source: CorpusSource, iris: DataIris) -> bool:
        """Before a first build: remember the current build of ``store_path`` as if this builder
        had made it (its manifest read, a working copy made, its entries made into stubs), so
        that the first change is applied as fast as the next. False (nothing remembered) when
        no build there fits ``source`` and this code."""
        self.forget()
        prev = current_build(store_path) if store_path.is_dir() else None
        if prev is None or previous_build_for(prev, source) != prev:
            return False
        fp = manifest.fingerprint(iris, source.provenance)
        whole = manifest.read_all(manifest.manifest_path(prev), fp)
        if whole is None:
            return False
        with build_lock(store_path):   # no build may take it for an abandoned copy while it is made
            if current_build(store_path) != prev:
                return False
            self.copy = WorkingCopy(prev.parent, prev)
        self.build_dir, self.fingerprint, self.manifest = prev, fp, whole
        self.stubs = {path: (iris.base, item, manifest.stub(path, item, iris))
                      for path, item in whole["entities"].items()}
        return True

    def manifest_for(self, previous_dir: Path, fp: str) -> dict[str, Any] | None:
        """The remembered manifest, if it is that of ``previous_dir`` under fingerprint ``fp``."""
        if self.build_dir is not None and self.build_dir == previous_dir and self.fingerprint == fp:
            return self.manifest
        return None

    def working_copy(self, previous_dir: Path, builds: Path) -> WorkingCopy:
        """A working copy of ``previous_dir`` to write the next build into: the remembered one when
        it is a copy of that build, else a new one. Until ``keep``, nothing is remembered."""
        if self.copy is None or self.build_dir != previous_dir:
            self.close_copy()
            self.copy = WorkingCopy(builds, previous_dir)
        self.build_dir = self.manifest = None   # the copy is about to change
        return self.copy

    def keep(self, build_dir: Path, fp: str, written: dict[str, Any], copy: WorkingCopy | None) -> None:
        """Remember a completed build. ``copy``: the working copy it was written into (now a copy
        of it), or None when it was written otherwise: then a working copy of it is made now (under
        the store's lock, after the swap) for the next build."""
        if copy is None or copy is not self.copy:
            self.close_copy()
            try:
                self.copy = WorkingCopy(build_dir.parent, build_dir)
            except MgRdfError:
                pass   # the build is done all the same; the next one makes a copy (or says why not)
        self.build_dir, self.fingerprint, self.manifest = build_dir, fp, written

    def forget(self) -> None:
        self.build_dir = self.fingerprint = self.manifest = None
        self.close_copy()

    def close_copy(self) -> None:
        if self.copy is not None:
            self.copy.close()
            self.copy = None


@without_cyclic_collection
def build(source: CorpusSource, store_path: Path, iris: DataIris, *, strict: bool = False,
          workers: int | None = None, title: str = CORPUS_TITLE, full: bool = False,
          progress: Progress | None = None, pages: PageWriter | None = None,
          stream: bool | None = None, memory: BuildMemory | None = None) -> BuildResult:
    """Build ``source`` into a new store at ``store_path`` and swap it in when complete.

    When the store already holds a build of the same corpus made by the same code,
    only files whose content changed are read again, only what they touch is
    validated again, and the new store is the previous one (a hard-linked copy)
    with those files' graphs replaced. ``full=True`` rebuilds everything. ``pages``: a writer of
    precomputed entity pages and data documents into each database's directory (the web
    layer's ``page_data.write``, given by ``mg-rdf build --pages``; costly: see DESIGN.md).
    A full build of a large corpus streams (stream.py: from ``stream.STREAM_FROM`` files);
    ``stream=False`` never streams, ``stream=True`` always does, and makes the build a full one.
    ``memory``: what a long-running builder keeps between its builds (``BuildMemory``).
    """
    t0 = time.perf_counter()
    prev_dir = current_build(store_path) if store_path.is_dir() else None
    written: list[dict[str, Any]] = []
    try:
        with new_build(store_path) as nb:
            pin = load_pin(nb.main, nb.keep_sources, source, iris, previous_build_for(prev_dir, source),
                           strict=strict, workers=workers, title=title, full=full or bool(stream), progress=progress,
                           pages=pages, stream=stream, memory=memory)
            encoding = _Encoding(pin)
            try:
                path = nb.commit(on_complete=lambda final: written.append(
                    encoding.result().write(manifest.manifest_path(final))),
                    blobs_of=blobs_of_build, optimize=pin.previous is None, while_flushing=encoding.go.set)
            finally:
                encoding.go.set()   # a failed commit: let the thread end
            if memory is not None:
                memory.keep(path, pin.fingerprint, written[0], nb.main.working)
    except BaseException:
        if memory is not None:
            memory.forget()
        raise
    return BuildResult(pin.analysis, path, pin.triples, pin.by_type, pin.analysis.seconds,
                       time.perf_counter() - t0, incremental=pin.previous is not None, rebuilt=pin.rebuilt,
                       swapped=None if nb.swapped is None else nb.swapped - t0)


@without_cyclic_collection
def build_remote(source: CorpusSource, url: str, iris: DataIris, *, strict: bool = False,
                 workers: int | None = None, title: str = CORPUS_TITLE, full: bool = False,
                 progress: Progress | None = None) -> BuildResult:
    """Build ``source`` into a remote SPARQL store: everything in memory, validated, then sent in
    ONE update request (atomic where the server runs an update as one transaction: Oxigraph,
    Fuseki, GraphDB). The analysis is always whole; what is sent is only the named graphs whose
    ``mg:graphDigest`` differs from the one the previous build recorded in the store (or that
    the server lacks), the graphs no longer written (dropped) and the build record. ``full``:
    every graph is sent again, whatever the store holds."""
    from .remote import GRAPH_DIGEST, RemoteStore, graph_digest, graph_texts

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    a = analyse(source, iris, workers=workers, progress=progress)
    if not a.index or not a.index.by_id:
        raise MgRdfError(f"{source.provenance.location}: no entity could be read; the remote store is unchanged")
    if strict and (a.violations or a.warnings):
        raise BuildRefused(a)
    remote = RemoteStore(url)
    timer = _Timer(a.seconds)
    record = NamedNode(iris.base + "graph/build")
    with timer("load"):
        quads = list(_all_quads(a, source, iris))
        by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
        facts = DatasetFacts(source.provenance, title, by_type, len(set(quads)), _input_date(a))
        quads += dataset_graph(facts, iris) + sameas_quads(a.index, iris, LINKS_PATH)
        graphs = graph_texts(quads)
        graphs.pop(record, None)   # the build record is written below, whole, by every build
        digests = {g.value: graph_digest(nt) for g, nt in graphs.items()}
        present = {g.value for g in remote.named_graphs()}
        recorded = {} if full else remote.recorded_digests(record.value)
        send = {g: nt for g, nt in graphs.items()
                if g.value not in present or recorded.get(g.value) != digests[g.value]}
        drop = [NamedNode(g) for g in sorted(present - digests.keys() - {record.value})]
        meta = build_graph(iris, started, time.perf_counter() - t0, a.warnings, a.violations)
        meta += [Quad(NamedNode(g), NamedNode(GRAPH_DIGEST), Literal(d), record) for g, d in sorted(digests.items())]
        send |= graph_texts(meta)
        sent = remote.replace_graphs(drop, send, timeout=600)
    return BuildResult(a, url, facts.triples, by_type, a.seconds,  # type: ignore[arg-type]
                       time.perf_counter() - t0, sent=sent, graphs_sent=len(send) - 1, graphs=len(graphs))


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


def load_pin(writer: StoreWriter, keep_sources: Callable[[Iterable[tuple[str, bytes]]], None], source: CorpusSource,
             iris: DataIris, previous_dir: Path | None, *, strict: bool = False, workers: int | None = None,
             title: str = CORPUS_TITLE, full: bool = False, progress: Progress | None = None,
             pages: PageWriter | None = None, stream: bool | None = False,
             memory: BuildMemory | None = None) -> PinLoad:
    """Analyse ``source`` and write it into ``writer``'s database: a copy of ``previous_dir``
    with the changed files' graphs replaced when its manifest fits, else a full load (streamed
    through worker processes with ``stream``, or with ``stream=None`` when the corpus is large:
    stream.py). ``memory``: see ``BuildMemory`` (the working copy replaces the copy)."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    fp = manifest.fingerprint(iris, source.provenance)
    whole = None
    if not full and previous_dir is not None:
        whole = memory.manifest_for(previous_dir, fp) if memory is not None else None
        if whole is None:
            whole = manifest.read_all(manifest.manifest_path(previous_dir), fp)
    previous = None if whole is None else whole["entities"]
    if previous is None and stream is None:
        from .stream import worth_streaming

        stream = worth_streaming(source)
    if previous is None and stream:
        return _stream_pin(writer, keep_sources, source, iris, fp, started, t0, strict=strict, workers=workers,
                           title=title, progress=progress, pages=pages)
    # SHACL runs in worker processes while this process reads the audits and loads the store.
    started_shacl: list[PendingValidation] = []
    a: Analysis | None = None

    def start_shacl(a: Analysis) -> None:
        started_shacl.append(PendingValidation(a.to_validate(), a.index, iris, workers, False, busy_caller=True))

    try:
        a = analyse(source, iris, shacl=False, progress=progress, previous=previous,
                    previous_audits=None if whole is None else whole.get("audits"), before_audits=start_shacl,
                    # a full build reads the audits in a forked process meanwhile; an incremental one reads
                    # few (audit_cache.py) and does it here: ~7 ms against ~20-40 ms for the fork and its wait
                    background_audits=whole is None, stubs=None if memory is None else memory.stubs)
        pending = started_shacl[0]
        if not a.index or not a.index.by_id:
            raise MgRdfError(f"{source.provenance.location}: no entity could be read; the previous store is unchanged")
        timer = _Timer(a.seconds)
        by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
        fresh_ids = {e.id for e in a.to_validate()}
        incremental = previous is not None and previous_dir is not None
        counted: _CountedChanges | None = None
        with timer("load"):
            if incremental and memory is not None:
                store = writer.open_working(memory.working_copy(previous_dir, writer.directory.parent))
            elif incremental:
                store = writer.open_copy(previous_dir)
            if incremental:
                counted = _CountedChanges(store, whole.get("triples"), _meta_graphs(iris))
                for g in _graphs_to_replace(previous, a, iris):
                    counted.remove_graph(g)
                _replace_vocabulary(counted, a, previous, iris)
                counted.extend(_changed_quads(a, source, iris, fresh_ids))  # small: one transaction
            else:
                store = writer.open()
                # the audits (read meanwhile in another process: analyse's background_audits) are
                # bulk-loaded by a thread beside the entities: Oxigraph's loads release the GIL and
                # each runs on one core (HEAD: 3.7-4.3 s one after the other, 2.1-2.4 s together)
                audits = _Thread(lambda: _load_audits(writer, a), "mg-rdf-audits")
                try:
                    writer.load(_all_quads(a, source, iris, audits=False))
                except BaseException:
                    audits.join()   # the thread uses the store: done with it before the error goes up
                    raise
                audits.result()
        a.join_audits()   # an incremental build's were read in process: nothing to wait for
        with timer("load"):
            if counted is not None:
                _replace_audits(counted, a)
            keep_sources((e.blob, e.source_data) for e in a.index.by_id.values() if not e.stub)
        outcome = pending.result()
        a.take_shacl(outcome)
        a.seconds["validate"] = outcome.seconds
        if strict and (a.violations or a.warnings):
            raise BuildRefused(a)
        with timer("load"):
            triples = len(store) if counted is None else counted.total()
            facts = DatasetFacts(source.provenance, title, by_type, triples, _input_date(a))
            meta = dataset_graph(facts, iris)
            meta += build_graph(iris, started, time.perf_counter() - t0, a.warnings, a.violations)
            meta += sameas_quads(a.index, iris, LINKS_PATH)
            if previous is not None:
                store.extend(meta)   # a few thousand quads: a transaction beats a bulk load's SST files
            else:
                writer.load(meta)
        if pages is not None:
            writer.seal()   # a working copy becomes the database's directory, where the pages go
            with timer("pages"):
                _write_pages(pages, store, writer, a, iris, previous_dir, previous, fresh_ids)
    finally:
        for pending in started_shacl:
            pending.cancel()
        if a is not None:
            a.cancel_audits()
    return PinLoad(a, triples, by_type, fp, previous, len(fresh_ids), time.perf_counter() - t0)


def _load_audits(writer: StoreWriter, a: Analysis) -> None:
    a.join_audits()
    if a.audits.nquads is not None:
        writer.load_nquads(a.audits.nquads)
    elif a.audits.quads:
        writer.load(a.audits.quads)


def _stream_pin(writer: StoreWriter, keep_sources: Callable[[Iterable[tuple[str, bytes]]], None], source: CorpusSource,
                iris: DataIris, fp: str, started: str, t0: float, *, strict: bool, workers: int | None,
                title: str, progress: Progress | None, pages: PageWriter | None) -> PinLoad:
    """A full load through stream.py: the same graph and problems, without every entity's
    triples in memory at once."""
    from .stream import analyse_and_load

    def meta(a: Analysis, triples: int) -> list[Quad]:
        assert a.index is not None
        if strict and (a.violations or a.warnings):
            raise BuildRefused(a)
        by_type = Counter(e.type for e in a.index.by_id.values())
        facts = DatasetFacts(source.provenance, title, by_type, triples, _input_date(a))
        return (dataset_graph(facts, iris) + build_graph(iris, started, time.perf_counter() - t0, a.warnings,
                                                         a.violations)
                + sameas_quads(a.index, iris, LINKS_PATH))

    keep_sources(())   # learns which files the store holds before the workers fork (each would read it again)
    a, triples = analyse_and_load(source, iris, writer, keep_sources, meta, workers=workers, progress=progress)
    assert a.index is not None and writer.store is not None
    timer = _Timer(a.seconds)
    by_type: Counter[str] = Counter(e.type for e in a.index.by_id.values())
    if pages is not None:
        with timer("pages"):
            _write_pages(pages, writer.store, writer, a, iris, None, None, set(a.index.by_id))
    return PinLoad(a, triples, by_type, fp, None, len(a.index.by_id), time.perf_counter() - t0)


class PageWriter(Protocol):
    """Writes what pages need into a complete database's directory (``web.page_data.write``):
    everything, or, given the database it was copied from and the graphs this build rewrote,
    only what those touch. The build calls it and knows nothing of pages."""

    def __call__(self, store: Store, directory: Path, iris: DataIris, previous_dir: Path | None = None,
                 changed_graphs: set[str] | None = None) -> Any: ...


def _write_pages(write: PageWriter, store, writer: StoreWriter, a: Analysis, iris: DataIris,
                 previous_dir: Path | None, previous: dict[str, dict] | None, fresh_ids: set[str]) -> None:
    """Pages made once per build into the database's directory: all of them, or from the
    previous build's, redoing what the rewritten graphs touch, when incremental."""
    if previous is None or previous_dir is None:
        write(store, writer.directory, iris)
        return
    changed = {iris.graph(eid) for eid in fresh_ids} | {g.value for g in _graphs_to_replace(previous, a, iris)}
    changed |= {g.value for g in a.audits.drop} | {q.graph_name.value for q in a.audits.statements()
                                                   if isinstance(q.graph_name, NamedNode)}
    write(store, writer.directory, iris, previous_dir, changed)


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


def _replace_audits(store: _CountedChanges, a: Analysis) -> None:
    """Replace the graphs of the audits read again (most builds: none)."""
    for g in sorted(a.audits.drop, key=str):
        store.remove_graph(g)
    store.extend(a.audits.statements())


class _CountedChanges:
    """The changes of an incremental build to its copy of the previous store, keeping the number
    of quads the dataset description states (all but the meta graphs, which are written after
    it is taken) without counting the whole store: ``len(store)`` reads every quad (~70-90 ms on
    the real corpus). The previous build's count plus, for each graph removed or written, its
    size now less its size in the copy: exact, since a graph not touched here is the same quads
    as in the previous build. Without a previous count (an older manifest) it is counted."""

    def __init__(self, store: Store, previous: int | None, uncounted: list[NamedNode]):
        self.store, self.previous = store, previous
        self.uncounted = set(uncounted)
        self.before: dict[NamedNode, int] = {}   # graph -> its quads in the copy, before any change

    def _size(self, g: NamedNode) -> int:
        return sum(1 for _ in self.store.quads_for_pattern(None, None, None, g))

    def _touch(self, g: Any) -> None:
        if g not in self.before and g not in self.uncounted and isinstance(g, NamedNode):
            self.before[g] = self._size(g)

    def remove_graph(self, g: NamedNode) -> None:
        self._touch(g)
        self.store.remove_graph(g)

    def extend(self, quads: Iterable[Quad]) -> None:
        quads = list(quads)
        for g in {q.graph_name for q in quads}:
            if not isinstance(g, NamedNode):
                self.previous = None   # a quad outside a named graph: not counted per graph, count all
            self._touch(g)
        self.store.extend(quads)

    def total(self) -> int:
        if self.previous is None:
            return len(self.store)
        return self.previous + sum(self._size(g) - n for g, n in self.before.items())


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
    return with_stats(out, a.source)


def with_stats(entries: dict[str, dict], source: CorpusSource) -> dict[str, dict]:
    """Manifest entries with the file stats a folder source saw (see FolderSource.remember)."""
    stats = getattr(source, "stats", None)
    if stats is None:
        return entries
    return {path: _with_stat(item, stats.get(path)) for path, item in entries.items()}


def _with_stat(item: dict, stat: Any) -> dict:
    """``item`` with ``stat``: the same object when it has that stat already (a watcher's stub memo
    then finds an unchanged entry by identity, analysis._stub, instead of comparing it)."""
    if "stat" in item and item["stat"] == stat:
        return item
    return {**item, "stat": stat}


def _all_quads(a: Analysis, source: CorpusSource, iris: DataIris, audits: bool = True) -> Iterator[Quad]:
    assert a.index is not None
    for eg in entity_graphs(a.index, source.provenance, iris):
        yield from eg.quads
    yield from vocabulary_graph(a.index, iris)
    if audits:
        yield from a.audits.statements()
    yield from _vocabularies()
