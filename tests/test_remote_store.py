"""A remote SPARQL 1.1 server as the store: a real `oxigraph serve` on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pyoxigraph import CanonicalizationAlgorithm, Dataset, Literal, NamedNode, Quad, QuerySolutions

from live_server import free_port
from mg_rdf.remote import RemoteStore, update_endpoint_for

_beside = Path(sys.executable).parent / "oxigraph"   # installed with the [test] extra, in the same venv
OXIGRAPH = str(_beside) if _beside.exists() else shutil.which("oxigraph")
G1 = NamedNode("https://w3id.org/movement-graph/graph/a")
G2 = NamedNode("https://w3id.org/movement-graph/graph/b")
S = NamedNode("https://w3id.org/movement-graph/id/a")
P = NamedNode("https://w3id.org/movement-graph/ontology#name")
BUILD_RECORD = "https://w3id.org/movement-graph/graph/build"


def start_oxigraph(location: Path) -> tuple[str, subprocess.Popen]:
    """A writable `oxigraph serve` on 127.0.0.1: its query endpoint, once it answers, and its process."""
    if OXIGRAPH is None:
        pytest.fail("the oxigraph CLI (PyPI package oxigraph, in the [test] extra) is missing")
    port = free_port()
    proc = subprocess.Popen([OXIGRAPH, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/query"
    for _ in range(100):
        try:
            requests.get(url, params={"query": "ASK {}"}, timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return url, proc


@pytest.fixture(scope="module")
def oxigraph_server(tmp_path_factory):
    url, proc = start_oxigraph(tmp_path_factory.mktemp("ox"))
    yield url
    proc.terminate()
    proc.wait(10)


def test_update_endpoint_follows_the_query_endpoint():
    assert update_endpoint_for("http://h:7878/query") == "http://h:7878/update"
    assert update_endpoint_for("http://h/fuseki/ds/query") == "http://h/fuseki/ds/update"


def test_replace_graphs_then_read_back_like_a_local_store(oxigraph_server):
    store = RemoteStore(oxigraph_server)
    store.replace_graphs([], [Quad(S, P, Literal("A"), G1), Quad(S, P, Literal("B é \"quoted\""), G2)])
    assert len(store) == 2
    assert {g.value for g in store.named_graphs()} == {G1.value, G2.value}
    rows = store.query("SELECT ?o WHERE { ?s mg:name ?o } ORDER BY ?o", use_default_graph_as_union=True,
                       prefixes={"mg": "https://w3id.org/movement-graph/ontology#"})
    assert isinstance(rows, QuerySolutions)
    assert [r["o"].value for r in rows] == ["A", 'B é "quoted"']
    assert [q.graph_name for q in store.quads_for_pattern(S, P, Literal("A"), None)] == [G1]
    # one graph replaced, the other untouched: in one update request
    store.replace_graphs([G1], [Quad(S, P, Literal("A2"), G1)])
    assert sorted(q.object.value for q in store.quads_for_pattern(S, None, None, None)) == ["A2", 'B é "quoted"']
    triples = list(store.query("CONSTRUCT WHERE { ?s ?p ?o }", use_default_graph_as_union=True))
    assert len(triples) == 2


def test_a_syntax_error_is_a_syntax_error(oxigraph_server):
    with pytest.raises(SyntaxError):
        RemoteStore(oxigraph_server).query("SELECT WHERE {")


def test_an_unreachable_store_is_a_clear_error():
    from mg_rdf.problems import MgRdfError

    with pytest.raises(MgRdfError, match="cannot be reached"):
        RemoteStore(f"http://127.0.0.1:{free_port()}/query", timeout=2).query("ASK {}")


def test_build_into_a_remote_store_and_serve_from_it(oxigraph_server, tmp_path):
    """mg-rdf build --store URL, then mg-rdf serve --store URL: pages and /sparql answer from it."""
    from click.testing import CliRunner

    from conftest import ROOT
    from live_server import start_server
    from mg_rdf.cli import main

    r = CliRunner().invoke(main, ["build", str(ROOT), "--store", oxigraph_server], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "remote, one update request" in r.output
    # the sample corpus, counted independently from its folders
    expected = len(list((ROOT / "entities").glob("*/*.md")))
    store = RemoteStore(oxigraph_server)
    rows = list(store.query("SELECT (COUNT(DISTINCT ?e) AS ?n) WHERE { GRAPH ?g { ?g mg:describes ?e } }",
                            prefixes={"mg": "https://w3id.org/movement-graph/ontology#"}))
    assert int(rows[0]["n"].value) == expected
    # a second build replaces the first one's graphs in one request: nothing is left twice
    size = len(store)
    assert CliRunner().invoke(main, ["build", str(ROOT), "--store", oxigraph_server]).exit_code == 0
    assert len(store) == size

    server = start_server(oxigraph_server, log_dir=tmp_path)  # type: ignore[arg-type]
    try:
        page = requests.get(server.url + "/page/org-access-now", timeout=30)
        assert page.status_code == 200 and "Access Now" in page.text
        answer = requests.get(server.url + "/sparql", params={"query": "SELECT ?c WHERE { ?o mg:leadsCampaign ?c }"},
                              headers={"Accept": "application/sparql-results+json"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["results"]["bindings"]
        assert requests.get(server.url + "/readyz", timeout=30).status_code == 200
    finally:
        server.stop()


def _content(url: str) -> set[Quad]:
    """Every quad of a remote store but the build record, blank nodes labelled canonically (RDFC-1.0):
    two stores holding the same graphs give the same set."""
    ds = Dataset(q for q in RemoteStore(url).quads_for_pattern(None, None, None, None)
                 if q.graph_name.value != BUILD_RECORD)
    ds.canonicalize(CanonicalizationAlgorithm.RDFC_1_0)
    return set(ds)


def test_a_rebuild_sends_only_the_graphs_that_changed(tmp_path):
    """Each remote build records a digest of every graph it wrote; the next sends only the graphs
    whose digest changed or that the store lacks, drops those no longer written, and leaves the
    store holding exactly what a full build of the same files into an empty store gives."""
    from conftest import ROOT
    from mg_rdf.build import build_remote
    from mg_rdf.source import FolderSource
    from mg_rdf.vocab import DataIris

    iris = DataIris()
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    url, proc = start_oxigraph(tmp_path / "ox")
    servers = [proc]
    try:
        first = build_remote(FolderSource(corpus), url, iris, workers=1)
        entities = len(list((corpus / "entities").glob("*/*.md")))
        assert first.graphs_sent == first.graphs > entities and first.sent > first.triples

        same = build_remote(FolderSource(corpus), url, iris, workers=1)
        assert same.graphs_sent == 0, "nothing changed: only the build record is sent"
        assert same.sent < first.sent / 10

        org = corpus / "entities/organizations/org-edri.md"
        org.write_text(org.read_text().replace("name: ", "name: Renamed ", 1))
        (corpus / "entities/persons/person-hamid-khan.md").unlink()   # others point to it
        added = (corpus / "entities/organizations/org-access-now.md").read_text()
        (corpus / "entities/organizations/org-new-member.md").write_text(
            added.replace("id: org-access-now", "id: org-new-member").replace("name: Access Now", "name: New Member"))
        store = RemoteStore(url)
        store.update(f"DROP GRAPH <{iris.graph('org-access-now')}>")   # changed behind mg-rdf's back: sent again
        edited = build_remote(FolderSource(corpus), url, iris, workers=1)
        assert 4 <= edited.graphs_sent < first.graphs / 2, edited.graphs_sent
        graphs = {g.value for g in store.named_graphs()}
        assert iris.graph("person-hamid-khan") not in graphs and iris.graph("org-new-member") in graphs
        assert iris.graph("org-access-now") in graphs

        fresh_url, fresh = start_oxigraph(tmp_path / "ox-fresh")
        servers.append(fresh)
        full = build_remote(FolderSource(corpus), fresh_url, iris, workers=1)
        assert full.graphs == edited.graphs
        assert _content(url) == _content(fresh_url)
        assert store.recorded_digests(BUILD_RECORD) == RemoteStore(fresh_url).recorded_digests(BUILD_RECORD)

        again = build_remote(FolderSource(corpus), url, iris, workers=1, full=True)
        assert again.graphs_sent == again.graphs and _content(url) == _content(fresh_url)
    finally:
        for p in servers:
            p.terminate()
            p.wait(10)
