"""Repeated /sparql queries are answered from a cache keyed by build, query and format."""

from __future__ import annotations

import shutil

from conftest import ROOT
from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris
from mg_rdf.web import create_app

Q = "SELECT ?o WHERE { ?o mg:leadsCampaign ?c } ORDER BY ?o"


def test_a_repeated_query_is_a_cache_hit_with_the_same_bytes_and_an_etag(sample_app):
    client = sample_app.test_client()
    accept = {"Accept": "application/sparql-results+json"}
    first = client.get("/sparql", query_string={"query": Q}, headers=accept)
    second = client.get("/sparql", query_string={"query": Q}, headers=accept)
    assert first.status_code == second.status_code == 200
    assert (first.headers["MG-RDF-Cache"], second.headers["MG-RDF-Cache"]) == ("miss", "hit")
    assert first.data == second.data and first.headers["ETag"] == second.headers["ETag"]
    # another format is another answer
    csv = client.get("/sparql", query_string={"query": Q}, headers={"Accept": "text/csv"})
    assert csv.headers["MG-RDF-Cache"] == "miss" and csv.data != first.data
    # revalidation: 304 with no body
    r = client.get("/sparql", query_string={"query": Q}, headers={**accept, "If-None-Match": first.headers["ETag"]})
    assert r.status_code == 304 and r.data == b""
    # a client may skip the cache
    r = client.get("/sparql", query_string={"query": Q}, headers={**accept, "Cache-Control": "no-cache"})
    assert r.headers["MG-RDF-Cache"] == "miss" and r.data == first.data


def test_a_new_build_is_never_answered_from_the_old_builds_cache(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, DataIris(), workers=1)
    client = create_app({"STORE_PATH": store, "TESTING": True}).test_client()
    accept = {"Accept": "text/csv"}
    before = client.get("/sparql", query_string={"query": Q}, headers=accept)
    assert client.get("/sparql", query_string={"query": Q}, headers=accept).headers["MG-RDF-Cache"] == "hit"
    org = corpus / "entities" / "campaigns" / "camp-edri-reclaim-your-face-eu-citizens-initiative-2020-2022.md"
    org.unlink()   # the campaign EDRi leads is gone: one lead fewer
    build(FolderSource(corpus), store, DataIris(), workers=1)
    after = client.get("/sparql", query_string={"query": Q}, headers=accept)
    assert after.headers["MG-RDF-Cache"] == "miss"
    assert after.data.count(b"\n") < before.data.count(b"\n")


def test_service_queries_are_not_cached(sample_app):
    client = sample_app.test_client()
    q = "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }"
    for _ in range(2):
        r = client.get("/sparql", query_string={"query": q})
        assert r.status_code == 400 and "MG-RDF-Cache" not in r.headers
