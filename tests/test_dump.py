"""Dumps sort in bounded memory (runs on disk, merged) and still give the same bytes.

The reference is the plain in-memory dump: every quad of the named graphs but the build
record as a pyoxigraph object, sorted by its text, handed to Oxigraph's serialiser whole
(the union of the graphs, each triple once, for the triple formats).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from pyoxigraph import (BlankNode, DefaultGraph, Literal, NamedNode, Quad, RdfFormat, Store, Triple,
                        serialize)

import mg_rdf.dump as dump_module
from mg_rdf.dump import FORMATS, GZIP_LEVEL, dump_bytes, dump_to_path, header, write_dump
from mg_rdf.vocab import PREFIXES, DataIris

IRIS = DataIris()
BASE = IRIS.base
ATTRIBUTION = "Make AI Good Movement Graph, test (commit 0). Licensed CC BY 4.0."
BUILD = NamedNode(BASE + "graph/build")
P = NamedNode("https://w3id.org/movement-graph/ontology#p")


def reference(store, fmt: str, out: io.BytesIO | gzip.GzipFile | None = None) -> bytes:
    """The whole dump made in memory from quad objects."""
    quads = [q for q in store.quads_for_pattern(None, None, None, None)
             if q.graph_name != BUILD and not isinstance(q.graph_name, DefaultGraph)]
    quads.sort(key=str)
    if out is None:
        out = io.BytesIO()
    if fmt != "jsonld":
        out.write(header(ATTRIBUTION))
    if fmt == "nq":
        serialize(quads, out, RdfFormat.N_QUADS)
    else:
        triples = sorted({q.triple for q in quads}, key=str)
        prefixes = {**PREFIXES, "id": BASE + "id/", "tag": BASE + "tag/"} if fmt != "nt" else None
        serialize(triples, out, FORMATS[fmt][0], prefixes=prefixes)
    return out.getvalue() if isinstance(out, io.BytesIO) else b""


def reference_gz(store, fmt: str) -> bytes:
    """The gzip file as it always was: Oxigraph's serialize flushes its output at the end, which
    ends a deflate block there, except for N-Quads and N-Triples of a local store, written from
    Oxigraph's own N-Quads (``Store.dump``) with no flush."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=GZIP_LEVEL) as gz:
        if fmt in ("nq", "nt") and isinstance(store, Store) and not any(
                isinstance(g, DefaultGraph) or (fmt == "nt" and isinstance(g, BlankNode))
                for g in {q.graph_name for q in store.quads_for_pattern(None, None, None, None)}):
            gz.write(reference(store, fmt))
        else:
            reference(store, fmt, gz)  # type: ignore[arg-type]
    return buf.getvalue()


def synthetic_store(entities: int) -> Store:
    """Graphs per entity with the terms whose text order is subtle (a literal that is the start
    of another, language tags, datatypes, escapes, non-ASCII), triples repeated in several
    graphs, and a build record that dumps leave out."""
    store = Store()
    quads = []
    shared = Triple(NamedNode(BASE + "id/shared"), P, Literal("in every graph"))
    for i in range(entities):
        g = NamedNode(f"{BASE}graph/e{i}")
        s = NamedNode(f"{BASE}id/e{i}")
        for o in (Literal(f"name {i}"), Literal(f"name {i}", language="en-GB"), Literal(f"name {i}", language="en"),
                  Literal(f"{i}", datatype=NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
                  Literal(f"é ü 中 😀 \"q\" \\ \t\n\r \u0001 {i}"), NamedNode(f"{BASE}id/e{i}"),
                  NamedNode(f"{BASE}id/e{i}0"), NamedNode(f"{BASE}tag/t{i % 7}")):
            quads.append(Quad(s, P, o, g))
        quads.append(Quad(shared.subject, shared.predicate, shared.object, g))
        quads.append(Quad(NamedNode(f"{BASE}id/e{(i + 1) % entities}"), P, s, g))   # also in the next graph
        quads.append(Quad(s, P, Literal(f"built at {i}"), BUILD))
    store.extend(quads)
    return store


@pytest.fixture(scope="module")
def small_store() -> Store:
    return synthetic_store(60)


class NotAStore:
    """What a remote store offers a dump: quads_for_pattern and named_graphs, no Store.dump."""

    def __init__(self, store: Store):
        self.store = store

    def quads_for_pattern(self, *pattern):
        return self.store.quads_for_pattern(*pattern)

    def named_graphs(self):
        return self.store.named_graphs()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_streamed_dump_equals_the_in_memory_dump_on_the_real_corpus(head_store, fmt, tmp_path, monkeypatch):
    expected = reference(head_store, fmt)
    with monkeypatch.context() as m:   # the default run size holds the real corpus: no temporary file
        m.setattr(dump_module._Runs, "_new_run", lambda self: pytest.fail("a run was spilled"))
        assert dump_bytes(head_store, fmt, IRIS, ATTRIBUTION) == expected
    out = dump_to_path(head_store, fmt, tmp_path / f"d.{fmt}.gz", IRIS, ATTRIBUTION, compress=True,
                       run_bytes=256 << 10)   # ~300 runs
    assert out.read_bytes() == reference_gz(head_store, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"d.{fmt}.gz"], "the runs are removed"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("run_bytes", [1, 300, 5000, 1 << 30])
def test_streamed_dump_equals_the_in_memory_dump_for_any_run_size(small_store, fmt, run_bytes, tmp_path):
    expected = reference(small_store, fmt)
    assert dump_bytes(small_store, fmt, IRIS, ATTRIBUTION, run_bytes=run_bytes) == expected
    assert dump_bytes(small_store, fmt, IRIS, ATTRIBUTION, compress=True, run_bytes=run_bytes) == \
        reference_gz(small_store, fmt)
    path = dump_to_path(small_store, fmt, tmp_path / f"d.{fmt}", IRIS, ATTRIBUTION, compress=False,
                        run_bytes=run_bytes)
    assert path.read_bytes() == expected


@pytest.mark.parametrize("fan_in", [2, 3, 7, 128])
def test_many_runs_are_written_and_merged(small_store, tmp_path, monkeypatch, fan_in):
    monkeypatch.setattr(dump_module, "FAN_IN", fan_in)
    spilled = []
    spill = dump_module._Runs._spill

    def counting(self):
        spilled.append(self.size)
        spill(self)
    monkeypatch.setattr(dump_module._Runs, "_spill", counting)
    for fmt in FORMATS:
        spilled.clear()
        path = dump_to_path(small_store, fmt, tmp_path / f"d.{fmt}", IRIS, ATTRIBUTION, compress=False, run_bytes=2000)
        assert len(spilled) > 25 and max(spilled) < 3000
        assert path.read_bytes() == reference(small_store, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"d.{fmt}" for fmt in FORMATS)


@pytest.mark.parametrize("run_bytes", [1, 1 << 30])
def test_triples_in_several_graphs_appear_once_and_the_build_record_not_at_all(small_store, run_bytes):
    nt = dump_bytes(small_store, "nt", IRIS, ATTRIBUTION, run_bytes=run_bytes).decode()
    lines = nt.splitlines()[2:]
    assert lines == sorted(set(lines), key=str.encode), "sorted, each triple once"
    assert nt.count("<https://w3id.org/movement-graph/id/shared>") == 1
    assert nt.count("<https://w3id.org/movement-graph/id/e1> <https://w3id.org/movement-graph/ontology#p> "
                    "<https://w3id.org/movement-graph/id/e0> .") == 1
    nq = dump_bytes(small_store, "nq", IRIS, ATTRIBUTION, run_bytes=run_bytes).decode()
    assert nq.count("<https://w3id.org/movement-graph/id/shared>") == 60, "one per graph in N-Quads"
    for text in (nt, nq, dump_bytes(small_store, "ttl", IRIS, ATTRIBUTION, run_bytes=run_bytes).decode()):
        assert "built at" not in text and "graph/build" not in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_stores_without_store_dump_or_with_unusual_graphs_dump_the_same(fmt):
    """A remote store (quad objects), default-graph quads (left out) and a blank graph name."""
    plain = synthetic_store(12)
    odd = synthetic_store(12)
    odd.extend([Quad(NamedNode(BASE + "id/d"), P, Literal("default graph")),
                Quad(NamedNode(BASE + "id/b"), P, Literal("blank graph"), BlankNode("g1"))])
    for store in (NotAStore(plain), odd, NotAStore(odd)):
        expected = reference(store, fmt)
        assert "default graph" not in expected.decode()
        expected_gz = reference_gz(store, fmt)
        for run_bytes in (1, 700, 1 << 30):
            assert dump_bytes(store, fmt, IRIS, ATTRIBUTION, run_bytes=run_bytes) == expected, (store, run_bytes)
            gz = dump_bytes(store, fmt, IRIS, ATTRIBUTION, True, run_bytes=run_bytes)
            assert gz == expected_gz, (store, run_bytes)
    assert dump_bytes(NotAStore(plain), fmt, IRIS, ATTRIBUTION) == dump_bytes(plain, fmt, IRIS, ATTRIBUTION)


def test_an_empty_store_dumps_its_header_alone():
    for fmt in FORMATS:
        assert dump_bytes(Store(), fmt, IRIS, ATTRIBUTION, run_bytes=1) == reference(Store(), fmt)


class FailingOut:
    """An output that breaks after a few writes (a full disk, a closed connection)."""

    def __init__(self, writes: int):
        self.writes = writes

    def write(self, data: bytes) -> int:
        self.writes -= 1
        if self.writes < 0:
            raise OSError("disk full")
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_runs_are_removed_when_writing_fails_mid_way(small_store, fmt, tmp_path, monkeypatch):
    monkeypatch.setattr(dump_module, "_WRITE", 100)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(OSError):
        write_dump(small_store, fmt, FailingOut(1), IRIS, ATTRIBUTION, run_bytes=500, tmp_dir=folder)
    assert list(folder.iterdir()) == []
    # and through dump_to_path: neither the runs, nor the half-written file, nor a dump is left
    monkeypatch.setattr(dump_module, "_write_lines", lambda out, lines: (next(lines), 1 / 0))
    monkeypatch.setattr(dump_module, "serialize", lambda *a, **k: (next(iter(a[0])), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        dump_to_path(small_store, fmt, folder / "d.gz", IRIS, ATTRIBUTION, compress=True, run_bytes=500)
    assert list(folder.iterdir()) == []


def test_runs_are_removed_when_reading_the_store_fails(small_store, tmp_path, monkeypatch):
    monkeypatch.setattr(dump_module, "_BLOCK", 1000)   # runs are spilled from inside Store.dump
    spill = dump_module._Runs._spill

    def failing(self):
        if len(self.files) == 3:
            raise OSError("disk full")
        spill(self)
    monkeypatch.setattr(dump_module._Runs, "_spill", failing)
    for store in (small_store, NotAStore(small_store)):
        with pytest.raises(OSError):
            dump_to_path(store, "nq", tmp_path / "d.nq", IRIS, ATTRIBUTION, compress=False, run_bytes=500)
        assert list(tmp_path.iterdir()) == []


class Sink:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("fmt", ["nq", "ttl"])
def test_memory_does_not_grow_with_the_store(fmt, tmp_path, monkeypatch):
    """Peak Python memory of a dump with 64 kB runs (and blocks, and write batches): the same for
    4x the quads, and a fraction of the one-run sort's, which holds the whole dump."""
    monkeypatch.setattr(dump_module, "_BLOCK", 64 << 10)
    monkeypatch.setattr(dump_module, "_WRITE", 64 << 10)
    monkeypatch.setattr(dump_module, "FAN_IN", 8)   # 25 and 100 runs: merged in more passes
    peaks = {}
    sizes = {}
    for entities in (1000, 4000):
        store = synthetic_store(entities)
        sizes[entities] = len(dump_bytes(store, fmt, IRIS, ATTRIBUTION))
        tracemalloc.start()
        write_dump(store, fmt, Sink(), IRIS, ATTRIBUTION, run_bytes=64 << 10, tmp_dir=tmp_path)
        peaks[entities] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    tracemalloc.start()
    write_dump(store, fmt, Sink(), IRIS, ATTRIBUTION, tmp_dir=tmp_path)   # one run: all in memory
    whole = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sizes[4000] > 3.9 * sizes[1000]
    assert peaks[4000] < 1.3 * peaks[1000] + (1 << 20), peaks
    print(fmt, peaks, whole, sizes)
    assert peaks[4000] < whole / 4 and whole > sizes[4000], (peaks, whole, sizes)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_dump_spills_beside_the_output_and_cleans_up(tmp_path):
    """`mg-rdf dump` end to end in a separate process, with a run size forced small."""
    from mg_rdf.build import build
    from mg_rdf.source import FolderSource

    root = Path(__file__).resolve().parents[1]
    store = tmp_path / "store"
    build(FolderSource(root, repository=""), store, IRIS)
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys, mg_rdf.dump as d; d.RUN_BYTES = 4096; spill = d._Runs._spill; "
            "d._Runs._spill = lambda self: (print('spilled', flush=True), spill(self)); "
            "from mg_rdf.cli import main; main(sys.argv[1:])")
    env = {**os.environ, "PYTHONPATH": str(root / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    small = subprocess.run([sys.executable, "-c", code, "dump", "--store", str(store), "--format", "nq", "--gzip",
                            str(out / "small.nq.gz")], capture_output=True, text=True, env=env, check=False)
    assert small.returncode == 0, small.stderr
    assert small.stdout.count("spilled") > 10, small.stdout
    whole = subprocess.run([sys.executable, "-c", "import sys; from mg_rdf.cli import main; main(sys.argv[1:])",
                            "dump", "--store", str(store), "--format", "nq", "--gzip", str(out / "whole.nq.gz")],
                           capture_output=True, text=True, env=env, check=False)
    assert whole.returncode == 0 and "spilled" not in whole.stdout, whole.stderr
    assert (out / "small.nq.gz").read_bytes() == (out / "whole.nq.gz").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["small.nq.gz", "whole.nq.gz"]


def test_the_web_app_removes_runs_a_dead_process_left(tmp_path):
    """A dump killed while merging leaves its runs folder, named like a half-written dump."""
    from mg_rdf.web.dumps import _forget_old_dumps

    builds = tmp_path / "builds"
    (builds / "b1").mkdir(parents=True)
    folder = tmp_path / "dumps" / "b1"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = [folder / f"movement-graph.nq.gz.tmp{dead}", folder / f"mg-rdf-dump-runs.x1.tmp{dead}"]
    kept = [folder / f"movement-graph.ttl.gz.tmp{os.getpid()}", folder / f"mg-rdf-dump-runs.x2.tmp{os.getpid()}",
            folder / "movement-graph.nt.gz"]
    for path in (left[0], kept[0], kept[2]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in (left[1], kept[1]):
        path.mkdir()
        (path / "run000001").write_bytes(b"x")
    _forget_old_dumps(tmp_path / "dumps", builds)
    assert sorted(folder.iterdir()) == sorted(kept)
