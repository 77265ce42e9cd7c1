"""A full build that streams: chunks of files are parsed, mapped and validated in forked
worker processes while the main process bulk-loads what they return.

Memory is what bounds a full build of a large corpus: holding every mapped entity's triples
(pyoxigraph objects) and rdflib graphs for SHACL took ~1.8 GB for 8,280 entities. Here the
main process reads the files (any source) and hands them out in chunks of ``CHUNK_FILES``; a
worker turns a chunk into

- the N-Quads bytes of each entity's whole graph (what its file states, the reverse of its
  references, its mentions, the graph's provenance), which the main process feeds to ONE
  Oxigraph bulk load as they arrive;
- a small summary per entity (id, type, name, blob, references, mentions, tags: a
  ``MappedEntity`` without triples, what a build manifest keeps) and the problems of reading
  and mapping it;
- the SHACL problems of its entities. The data graph of a chunk holds what its files state
  plus the ``rdf:type`` of every entity they reference, as the partitions of
  ``validation.py`` do, and only the chunk's own entities are focus nodes.

Reverse links, mentions and the type of a referenced entity depend on the whole corpus; a
worker takes them from a listing made before anything is parsed (file name = id, folder =
type, first path wins, as in ``CorpusIndex``). Once every file is read, the main process
checks those predictions against the real index (from the summaries): an entity graph with
a reverse link or mention to an id predicted wrongly, or written into by a losing duplicate,
is rewritten; an entity whose SHACL run saw a wrong type (or shared a chunk with a duplicate)
is validated again. Both are rare (a file whose name or folder does not match its id), so
the result is the in-memory build's at the cost of one pass. Then the main process runs the
whole-corpus checks on the summaries and feeds the tag scheme, ontology, shapes, audits (read
from the start in a forked process) and the build's description to the same bulk load: a
database made by one bulk load needs no compaction. tests/test_stream_build.py checks that
the dump, the problems and the manifest equal the in-memory build's (real corpus, a
multiplied one cut into small chunks, a corpus whose layout misleads the listing).
"""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from pyoxigraph import NamedNode, Quad, RdfFormat, parse, serialize

from . import schema
from .analysis import Analysis, Progress, _Timer
from .assembly import entity_triples
from .audit_cache import PendingAudits
from .integrity import CorpusIndex, check
from .mapping import MappedEntity, map_entity
from .problems import MgRdfError, Problem
from .reader import read_entity
from .source import ENTITY_ROOT, CorpusSource, SourceFile, blob_hash
from .validation import _IRI_CACHE, ShaclOutcome, _problems, _shapes_graph, data_graph, run_shacl, validate
from .vocab import DataIris
from .wikidata_links import LINKS_PATH, link_problems
from .workers import collect_chunk, forked_pool, kill_pool

STREAM_FROM = 2000  # entity files from which a full build streams (below: analysis.py in memory)
CHUNK_FILES = 250   # files per worker job: big enough for pyshacl's fixed costs, small for memory
IN_FLIGHT = 3       # jobs queued per worker (bounds the bytes waiting in the main process)


@dataclass
class _Chunk:
    """What a worker returns for one chunk of files."""

    # per file, in order: path, its summary (None: unreadable), its read + map problems
    files: list[tuple[str, MappedEntity | None, list[Problem]]]
    nquads: bytes                                   # what the chunk's entity files state
    shacl: dict[str, list[Problem]]                 # path -> SHACL problems (entities validated)
    assumed: list[tuple[str, str, str | None]]      # (path, referenced id, type assumed for it)
    seconds: dict[str, float] = field(default_factory=dict)
    quads: int = 0                                  # distinct quads in nquads (graphs: one per entity)


# (base IRI, predicted types by id, keep_sources, provenance): set before the workers fork, inherited
_JOB: tuple | None = None

# (analysis, quads so far) -> the quads that describe the build (see analyse_and_load)
MetaQuads = Callable[[Analysis, int], Iterable[Quad]]


def _predicted_types(source: CorpusSource) -> dict[str, str]:
    """Entity id -> type, as the corpus's layout says before any file is read (file name =
    id, folder = type; first path wins, as in ``CorpusIndex``). Empty when the source cannot
    list its files without reading them: every reference then counts as unverified."""
    paths: list[str] = []
    root = getattr(source, "root", None)
    if root is not None and (root / ENTITY_ROOT).is_dir():
        base = root / ENTITY_ROOT
        for dirpath, _, filenames in os.walk(base, followlinks=False):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            paths += [f"{rel}/{n}" for n in filenames if n.endswith(".md")]
    elif hasattr(source, "list_blobs"):
        try:
            paths = [path for _, _, path in source.list_blobs(ENTITY_ROOT)]   # type: ignore[attr-defined]
        except Exception:   # noqa: BLE001 - a listing is only a hint
            paths = []
    out: dict[str, str] = {}
    for path in sorted(paths):
        found = schema.by_layout(path)
        if found is not None:
            out.setdefault(found[0], found[1].name)
    return out


def _lean_rdflib() -> None:
    """In a worker process only: rdflib's ``Store.add`` makes an event object for every triple
    added, for listeners no store here has (its dispatcher is empty): ~5% of a chunk's time.
    A worker is ours alone, so the event is not made there."""
    import rdflib.store

    rdflib.store.TripleAddedEvent = lambda **kwargs: None   # type: ignore[assignment,misc]


def worth_streaming(source: CorpusSource) -> bool:
    """Whether a full build of ``source`` should stream: from ``STREAM_FROM`` entity files. On the
    real corpus (828 files) the in-memory build is as fast and its audits overlap more; memory
    only matters from a few thousand files on (see docs/DESIGN.md)."""
    return len(_predicted_types(source)) >= STREAM_FROM


def _started() -> None:
    """The first job of every worker: nothing, so that the workers fork before the source starts
    reading (a git source's `cat-file` pipes must not be inherited: git would wait for ever
    for the end of its input, which a worker's copy of the pipe keeps open)."""


def _chunk_job(files: list[tuple[str, bytes, str]]) -> _Chunk:
    assert _JOB is not None
    _lean_rdflib()
    cpu = time.process_time()
    base, predicted, keep_sources, provenance = _JOB
    iris = DataIris(base)
    seconds = {"parse": 0.0, "map": 0.0, "validate": 0.0, "serialize": 0.0}
    out: list[tuple[str, MappedEntity | None, list[Problem]]] = []
    typed: list[MappedEntity] = []
    kept: list[tuple[str, bytes]] = []
    for path, data, blob in files:
        t0 = time.perf_counter()
        r = read_entity(SourceFile(path, data, blob))
        t1 = time.perf_counter()
        seconds["parse"] += t1 - t0
        if r.record is None:
            out.append((path, None, r.problems))
            continue
        m = map_entity(r.record, iris)
        seconds["map"] += time.perf_counter() - t1
        out.append((path, m, [*r.problems, *m.problems]))
        if m.type in schema.TYPES:
            typed.append(m)
            kept.append((m.blob, data))
    if keep_sources is not None:
        keep_sources(kept)   # one pack a chunk (source_packs.py)
    t0 = time.perf_counter()
    # N-Triples with the graph put before each line's final " .": an N-Triples line ends in
    # " .\n" and a newline inside a literal is escaped, so the replace touches line ends only
    # (3x faster than making a Quad object per triple)
    # The whole entity graph: reverse links and mentions go to the ids the listing predicts
    # (the main process checks that against the real index, see _to_regraph).
    parts = []
    quads = 0
    for m in typed:
        g = iris.graph(m.id)
        triples = serialize(entity_triples(m, predicted, provenance, iris, NamedNode(g)), format=RdfFormat.N_TRIPLES)
        quads += _distinct_lines(triples)
        parts.append(triples.replace(b" .\n", f" <{g}> .\n".encode()))
    nquads = b"".join(parts)
    del parts
    seconds["serialize"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    shacl, assumed = _validate(typed, predicted, iris)
    seconds["validate"] += time.perf_counter() - t0
    for _, m, _ in out:   # what the main process keeps: a summary, as a build manifest has it
        if m is not None:
            m.triples, m.lines, m.problems, m.source_data = [], {}, [], b""
    _IRI_CACHE.clear()   # validation's cache of rdflib IRIs: it would grow with every chunk
    collect_chunk()
    seconds["cpu workers"] = time.process_time() - cpu
    return _Chunk(out, nquads, shacl, assumed, seconds, quads)


def _distinct_lines(data: bytes) -> int:
    """The distinct lines of N-Triples or N-Quads text from Oxigraph's serialiser (one statement
    a line, each ending in a newline; the same statement is always written alike)."""
    return len(set(data.split(b"\n"))) - 1 if data else 0


def _validate(typed: list[MappedEntity], predicted: dict[str, str],
              iris: DataIris) -> tuple[dict[str, list[Problem]], list[tuple[str, str, str | None]]]:
    """SHACL over one chunk: its entities' triples plus the type of each entity they refer to
    (a chunk-mate's own, else the predicted one, recorded for the main process to check)."""
    if not typed:
        return {}, []
    here: dict[str, str] = {}
    for m in typed:
        here.setdefault(m.id, m.type)
    assumed: list[tuple[str, str, str | None]] = []

    def kind_of(m: MappedEntity, target: str) -> str | None:
        if target in here:
            return here[target]
        kind = predicted.get(target)
        assumed.append((m.path, target, kind))
        return kind

    g, focus = data_graph(typed, kind_of, iris)
    conforms, results = run_shacl(g, focus, tuple(sorted({m.type for m in typed})))
    by_path: dict[str, list[Problem]] = {m.path: [] for m in typed}
    if not conforms:
        for p in _problems(results, {m.iri.value: m for m in typed}, iris):
            by_path[p.path].append(p)
    return by_path, assumed


def analyse_and_load(source: CorpusSource, iris: DataIris, writer, keep_sources, meta: MetaQuads, *,
                     workers: int | None = None, progress: Progress | None = None) -> tuple[Analysis, int]:
    """A full build's analysis and load in one streaming pass (see the module doc): ``writer``
    (a ``store.StoreWriter``) ends up holding every quad, ``meta(analysis, quads)`` giving the
    dataset description, build record and linkset (it may raise, e.g. ``BuildRefused``) from
    the analysis (SHACL results taken, audits joined) and the number of quads before them,
    which is returned with the analysis.

    Everything goes into ONE bulk load when the listing predicted the corpus well (nearly
    always): the whole-corpus checks, the tag scheme, ontology, shapes, audits and ``meta`` are
    fed to it after the last chunk. A database made by one bulk load needs no compaction (at
    100x the corpus, a minute of one core after a second load), and its lookups are as fast."""
    global _JOB
    a = Analysis(source, iris)
    timer = _Timer(a.seconds)
    for k in ("read", "parse", "map", "validate", "load", "wait"):
        a.seconds[k] = 0.0
    predicted = _predicted_types(source)
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    for types in {tuple(sorted({t})) for t in schema.TYPES}:
        _shapes_graph(types)    # parsed once here, inherited by the workers
    summaries: list[MappedEntity] = []
    shacl: dict[str, list[Problem]] = {}
    assumed: list[tuple[str, str, str | None]] = []
    chunk_of: dict[str, int] = {}
    chunks: list[list[str]] = []
    pool: ProcessPoolExecutor | None = None
    total = len(predicted)
    fed = 0          # distinct quads fed to the load so far
    after = 0.0      # seconds spent within the load after its last chunk (checks, audits' wait …)
    folded = False   # what follows the entity graphs went into the same load

    def take(c: _Chunk) -> bytes:
        nonlocal fed
        for k, v in c.seconds.items():
            a.seconds[k] = a.seconds.get(k, 0.0) + v
        number = len(chunks)
        paths = []
        for path, m, problems in c.files:
            a.problems.extend(problems)
            if m is None:
                continue
            a.entries[path] = (m, problems)
            if m.type in schema.TYPES:
                summaries.append(m)
                chunk_of[path] = number
                paths.append(path)
        chunks.append(paths)
        shacl.update(c.shacl)
        assumed.extend(c.assumed)
        fed += c.quads
        if progress:
            progress("parse", len(a.entries), max(total, len(a.entries)))
        return c.nquads

    def files() -> Iterator[list[tuple[str, bytes, str]]]:
        batch: list[tuple[str, bytes, str]] = []
        it = source.entity_files()
        while True:
            t0 = time.perf_counter()
            f = next(it, None)
            data = f.data if f is not None else b""
            a.seconds["read"] += time.perf_counter() - t0
            if f is None:
                break
            a.files += 1
            batch.append((f.path, data, f.blob))
            if len(batch) == CHUNK_FILES:
                yield batch
                batch = []
        if batch:
            yield batch

    def results(first: deque[Future]) -> Iterator[bytes]:
        assert pool is not None
        pending = first
        for batch in feeder:
            pending.append(pool.submit(_chunk_job, batch))
            if len(pending) >= IN_FLIGHT * n_workers:
                yield _wait(pending.popleft())
        while pending:
            yield _wait(pending.popleft())

    def all_quads(first: deque[Future]) -> Iterator[Quad]:
        nonlocal folded, after
        # Oxigraph's parser makes the chunks' quads (as fast as its bulk load from bytes here);
        # a load from bytes would give the ontology's and shapes' blank nodes new labels
        for nquads in results(first):
            yield from parse(nquads, format=RdfFormat.N_QUADS)
        t0 = time.perf_counter()
        rest = after_the_chunks()
        after = time.perf_counter() - t0
        if rest is not None:
            folded = True
            yield from rest

    def _wait(fut: Future) -> bytes:
        t0 = time.perf_counter()
        c = fut.result()
        a.seconds["wait"] += time.perf_counter() - t0
        return take(c)

    def after_the_chunks() -> list[Quad] | None:
        """Run while the bulk load waits for its last quads: the whole-corpus checks, and, when
        no entity graph must be rewritten, the quads that follow the entity graphs (None: they
        are loaded after the load)."""
        nonlocal pool, regraph, again, fresh, fed
        assert pool is not None
        pool.shutdown()
        pool = None
        a.seconds["stream"] = time.perf_counter() - t_stream
        a.seconds["cpu main stream"] = _cpu() - cpu_main
        a.problems.extend(source.problems)
        with timer("check"):
            a.index = CorpusIndex(summaries)
            a.entities = summaries
            if not a.index.by_id:
                raise MgRdfError(f"{source.provenance.location}: no entity could be read; "
                                 "the previous store is unchanged")
            a.problems.extend(check(a.index))
            a.problems.extend(link_problems(a.index, LINKS_PATH))
            again = _to_check_again(a.index, assumed, chunk_of, chunks)
            regraph = _to_regraph(a.index, predicted)
            fresh = _read_again(source, iris, again | {a.index.by_id[i].path for i in regraph}) if (
                again or regraph) else {}
        if regraph:
            return None
        rest = the_rest()
        # the graphs of these quads are none of the entity graphs counted so far
        fed += len(set(rest))
        return rest + list(meta(a, fed))

    def the_rest() -> list[Quad]:
        """What follows the entity graphs but the build's description: the tag scheme, ontology,
        shapes and audits (the SHACL results are taken first: the problems keep their order)."""
        nonlocal early
        take_shacl()
        rest = list(_derived_quads(a, source, iris))
        a.pending_audits, early = early, None
        a.join_audits()
        return rest + a.audits.statements()

    def take_shacl() -> None:
        t0 = time.perf_counter()
        winners = {e.path for e in a.index.by_id.values()}
        problems = [p for path, ps in shacl.items() if path in winners and path not in again for p in ps]
        if again:
            redo = [fresh[p] for p in sorted(again)]
            problems += validate(redo, a.index, iris, workers=1).problems
        a.seconds["validate"] += time.perf_counter() - t0
        a.take_shacl(ShaclOutcome(problems, None, a.seconds["validate"]))
        a.seconds["rechecked"] = len(again)

    regraph: set[str] = set()
    again: set[str] = set()
    fresh: dict[str, MappedEntity] = {}
    t_stream, cpu_main = time.perf_counter(), _cpu()
    # the audits are read in a forked process from the start, with the ids the layout predicts
    # (see PendingAudits.early; a corpus without audits costs it nothing)
    early: PendingAudits | None = PendingAudits.early(source, iris)
    _JOB = (iris.base, predicted, keep_sources, source.provenance)
    try:
        pool = forked_pool(n_workers)   # forked at the first submit: before the source reads, the store opens
        pool.submit(_started).result()
        feeder = files()
        first: deque[Future] = deque()
        for batch in feeder:
            first.append(pool.submit(_chunk_job, batch))
            if len(first) >= n_workers:
                break
        _JOB = None
        store = writer.open()
        t0, before = time.perf_counter(), a.seconds["wait"] + a.seconds["read"]
        writer.load(all_quads(first))
        a.seconds["load"] += (time.perf_counter() - t0 - after
                              - (a.seconds["wait"] + a.seconds["read"] - before))
        if folded:
            a.seconds["regraphed"] = 0
            a.seconds["cpu main after"] = _cpu() - cpu_main - a.seconds["cpu main stream"]
            return a, fed

        # An entity graph must be rewritten: that, then the rest, follow the load as two more writes.
        with timer("load"):
            writer.writes += 1
            for eid in sorted(regraph):
                e = fresh[a.index.by_id[eid].path]
                g = NamedNode(iris.graph(eid))
                store.remove_graph(g)
                store.extend(Quad(t.subject, t.predicate, t.object, g)
                             for t in entity_triples(e, a.index, source.provenance, iris, g))
        a.seconds["regraphed"] = len(regraph)
        rest = the_rest()
        with timer("load"):
            count = len(store) + len(set(rest))   # the graphs of ``rest`` are not in the store yet
            writer.load(rest + list(meta(a, count)))
        a.seconds["cpu main after"] = _cpu() - cpu_main - a.seconds["cpu main stream"]
    finally:
        _JOB = None
        if pool is not None:
            kill_pool(pool)
        if early is not None:
            early.cancel()
        a.cancel_audits()
    return a, count


def _cpu() -> float:
    """CPU seconds of this process, all threads (Oxigraph's loader threads included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _to_check_again(index: CorpusIndex, assumed: list[tuple[str, str, str | None]],
                    chunk_of: dict[str, int], chunks: list[list[str]]) -> set[str]:
    """Paths of loaded entities whose SHACL run saw something other than the real corpus: a
    referenced id assumed present, absent or of a type it does not have, or a chunk holding a
    file that is not loaded (a duplicate id: its triples were in that chunk's data graph)."""
    winners = {e.path for e in index.by_id.values()}
    out = {path for path, target, kind in assumed if path in winners and index.type_of(target) != kind}
    for first, dup in index.duplicates:
        for e in (first, dup):
            if e.path in chunk_of:
                out.update(p for p in chunks[chunk_of[e.path]] if p in winners)
    return out


def _to_regraph(index: CorpusIndex, predicted: dict[str, str]) -> set[str]:
    """Ids of loaded entities whose graph as a worker wrote it is not the right one: it has a
    reverse link or mention to an id the listing predicted wrongly (present or absent), or a
    losing duplicate wrote into the same graph."""
    out = {first.id for first, _ in index.duplicates}
    by_id = index.by_id
    for e in by_id.values():
        for ref in (*e.references, *e.mentions):
            t = ref.target_id
            if t != e.id and (t in predicted) != (t in by_id):
                out.add(e.id)
                break
    return out


def _read_again(source: CorpusSource, iris: DataIris, paths: set[str]) -> dict[str, MappedEntity]:
    """The entities at ``paths`` read and mapped in full (rare: see ``_to_check_again``)."""
    out: dict[str, MappedEntity] = {}
    root = getattr(source, "root", None)
    if root is not None:
        files = (SourceFile(p, data, blob_hash(data)) for p in sorted(paths) for data in [(root / p).read_bytes()])
    else:
        files = (f for f in source.entity_files() if f.path in paths)
    for f in files:
        r = read_entity(f)
        if r.record is not None:
            m = map_entity(r.record, iris)
            out[f.path] = m
    return out


def _derived_quads(a: Analysis, source: CorpusSource, iris: DataIris) -> Iterator[Quad]:
    """What the main process adds to the entity graphs the workers wrote: the tag scheme, the
    ontology and the shapes."""
    from .assembly import vocabulary_graph
    from .build import _vocabularies

    assert a.index is not None
    yield from vocabulary_graph(a.index, iris)
    yield from _vocabularies()
