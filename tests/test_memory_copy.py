"""The serving processes' in-memory copy of the current build (web/memory_copy.py): the same
quads as the build on disk, blank node labels included; made only for builds small enough;
abandoned for a newer build; and what `mg-rdf serve` answers /sparql from once it is made."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
from pyoxigraph import RdfFormat, Store

from mg_rdf.web.memory_copy import MemoryCopy, database_bytes


def _snap(build: str, sample_build, disk: Store) -> SimpleNamespace:
    """What MemoryCopy.of reads of a state.Snapshot of the current build."""
    return SimpleNamespace(version=build, build_dir=sample_build.store_path, store=disk, store_root=None)


def _nquads(store: Store) -> list[bytes]:
    return sorted(store.dump(format=RdfFormat.N_QUADS).splitlines())


@pytest.fixture()
def disk(sample_build):
    return Store.read_only(str(sample_build.store_path))


def test_the_copy_holds_the_same_quads_and_blank_nodes_as_the_build(sample_build, disk):
    copy = MemoryCopy(10**9)
    build = sample_build.store_path.name
    assert copy.of(_snap(build, sample_build, disk)) is disk   # from disk until the copy is made
    copy.filling.join(60)
    made = copy.of(_snap(build, sample_build, disk))
    assert made is not disk
    assert any(b"_:" in line for line in _nquads(disk))   # the ontology's and shapes' lists
    assert _nquads(made) == _nquads(disk)


@pytest.mark.parametrize("up_to", [0, 1])
def test_no_copy_when_turned_off_or_the_build_is_too_large(sample_build, disk, up_to):
    assert database_bytes(str(sample_build.store_path)) > 1
    copy = MemoryCopy(up_to)
    for _ in range(2):
        assert copy.of(_snap(sample_build.store_path.name, sample_build, disk)) is disk
    assert copy.filling is None


def test_a_newer_build_s_copy_replaces_the_earlier_one(sample_build, disk):
    copy = MemoryCopy(10**9)
    copy.of(_snap("earlier", sample_build, disk))
    first = copy.filling
    copy.of(_snap("newer", sample_build, disk))   # before the first copy may be done
    first.join(60)
    copy.filling.join(60)
    assert copy.of(_snap("newer", sample_build, disk)) is not disk
    assert copy.of(_snap("earlier", sample_build, disk)) is disk   # asked again: copied again
    copy.filling.join(60)


def test_serve_answers_from_the_copies_with_the_answers_from_disk(sample_build, tmp_path):
    from live_server import start_server

    store = sample_build.store_path.parent.parent
    query = ("SELECT ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } FILTER(!isBlank(?s) && !isBlank(?o)) } "
             "ORDER BY ?s ?p ?o")
    answers = {}
    for mb in ("0", "200"):
        server = start_server(store, "--memory-copy-up-to", mb, log_dir=tmp_path)
        try:
            deadline, in_a_row = time.monotonic() + 60, 0
            while in_a_row < 6 and time.monotonic() < deadline:   # every serving process: new connections
                r = requests.get(server.url + "/sparql", params={"query": query}, timeout=30,
                                 headers={"Accept": "application/sparql-results+json", "Cache-Control": "no-cache",
                                          "Connection": "close"})
                assert r.status_code == 200
                memory = 'desc="memory"' in r.headers["Server-Timing"]
                if mb == "0":
                    assert not memory
                    break
                in_a_row = in_a_row + 1 if memory else 0
            assert mb == "0" or in_a_row == 6, "the serving processes made no in-memory copy within 60 s"
            answers[mb] = r.content
        finally:
            server.stop()
    assert answers["0"] == answers["200"]


@pytest.mark.parametrize("extra", [False, True])
def test_a_process_forked_for_growth_answers_from_disk(sample_build, extra):
    """A serving process the supervisor forks while the others are held up makes no copy (it
    lives until 30 s after the need, and the copying would take CPU from a busy server)."""
    import gc
    import logging

    from mg_rdf.web import create_app, serve

    arbiter = SimpleNamespace(base=2, _next_slot=3 if extra else 1)
    worker = SimpleNamespace(log=logging.getLogger("test"))
    serve._assign_slot(arbiter, worker)
    assert worker.extra is extra
    app = create_app({"STORE_PATH": sample_build.store_path.parent.parent, "TESTING": True,
                      "QUERY_IN_PROCESS": True})
    before, serve._flask_app = serve._flask_app, app
    try:
        serve._warm_up(worker)
    finally:
        serve._flask_app = before
        gc.unfreeze()
    copy = app.extensions["mg_rdf.memory_copy"]
    assert (copy.filling is None) is extra
    assert (copy.up_to_bytes == 0) is extra
    if copy.filling is not None:
        copy.filling.join(60)
