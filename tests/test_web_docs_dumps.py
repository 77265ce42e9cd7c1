"""The ontology and shapes pages, the dumps and /.well-known/void.

What the pages must document is read here from ontology/*.ttl and
shapes/*.ttl with rdflib, independently of the app (which reads the
store's copy with pyoxigraph).
"""

from __future__ import annotations

import gzip
import hashlib
import html as htmllib
import re

import pytest
import rdflib
import requests
from pyoxigraph import Dataset, NamedNode, RdfFormat, Store, parse
from rdflib.compare import isomorphic
from rdflib.namespace import OWL, RDF, RDFS, SKOS

from mg_rdf.config import ONTOLOGY_FILES, SHAPES_FILES

MG = "https://w3id.org/movement-graph/ontology#"
MGSH = "https://w3id.org/movement-graph/shapes#"
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
VOID = "http://rdfs.org/ns/void#"
BASE = "https://w3id.org/movement-graph/"
RDFLIB_FORMATS = {"ttl": "turtle", "jsonld": "json-ld", "nt": "nt", "rdf": "xml"}
MEDIA = {"ttl": "text/turtle", "jsonld": "application/ld+json", "nt": "application/n-triples",
         "rdf": "application/rdf+xml"}
DUMP_FORMATS = {"ttl": RdfFormat.TURTLE, "nt": RdfFormat.N_TRIPLES, "nq": RdfFormat.N_QUADS,
                "jsonld": RdfFormat.JSON_LD}


@pytest.fixture(scope="module")
def ontology_file() -> rdflib.Graph:
    g = rdflib.Graph()
    for path in ONTOLOGY_FILES:   # mg.ttl and the audit and change vocabularies
        g.parse(path)
    return g


@pytest.fixture(scope="module")
def shapes_file() -> rdflib.Graph:
    g = rdflib.Graph()
    for path in SHAPES_FILES:
        g.parse(path)
    return g


def declared_terms(g: rdflib.Graph) -> set[str]:
    """Local names of every class, property, datatype, scheme and concept the file declares."""
    kinds = (OWL.Class, RDFS.Class, OWL.ObjectProperty, OWL.DatatypeProperty, RDF.Property,
             OWL.AnnotationProperty, RDFS.Datatype, SKOS.ConceptScheme, SKOS.Concept)
    return {str(s)[len(MG):] for k in kinds for s in g.subjects(RDF.type, k)
            if isinstance(s, rdflib.URIRef) and str(s).startswith(MG)}


def section(html: str, anchor: str) -> str:
    """The HTML of one term's section, from its id to the next term."""
    start = html.index(f'id="{anchor}"')
    end = html.find('<section class="term"', start + 1)
    return html[start:end if end > 0 else None]


# --- ontology -------------------------------------------------------------------

def test_ontology_page_has_an_anchor_for_every_declared_term(sample_app, ontology_file):
    r = sample_app.test_client().get("/ontology", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    terms = declared_terms(ontology_file)
    assert len(terms) > 100
    missing = sorted(t for t in terms if f'id="{t}"' not in page)
    assert not missing, f"terms without an anchor on /ontology: {missing}"
    # local names that differ only by case are distinct anchors
    assert 'id="event"' in page and 'id="Event"' in page
    for term in terms:
        label = ontology_file.value(rdflib.URIRef(MG + term), RDFS.label) or ontology_file.value(
            rdflib.URIRef(MG + term), SKOS.prefLabel)
        if label:
            assert str(label) in htmllib.unescape(section(page, term)), f"label of {term}"


def test_ontology_page_shows_domains_ranges_inverses_and_alignments(sample_app, ontology_file):
    page = sample_app.test_client().get("/ontology").get_data(as_text=True)
    founded = section(page, "founded")   # domain is owl:unionOf ( Organization LocalGroup )
    assert re.search(r'<dt>Domain</dt><dd><a href="#Organization">mg:Organization</a> or '
                     r'<a href="#LocalGroup">mg:LocalGroup</a></dd>', founded)
    assert "wdt:P571" in founded and "YAML field" in founded
    lead = section(page, "leadOrganization")
    assert '<dt>Inverse of</dt><dd><a href="#leadsCampaign">mg:leadsCampaign</a>' in lead
    assert "symmetric" in section(page, "relatedOrganization")
    assert "symmetric" not in section(page, "relatedStrategy").replace("Not symmetric", "")
    person = section(page, "Person")
    for external in ontology_file.objects(rdflib.URIRef(MG + "Person"), RDFS.subClassOf):
        assert f'href="{external}"' in person or f'href="#{str(external)[len(MG):]}"' in person
    event = section(page, "Event")
    assert '<dt>Close match</dt><dd><a href="http://www.wikidata.org/entity/Q1656682">wd:Q1656682</a>' in event
    assert 'href="https://creativecommons.org/licenses/by/4.0/"' in page
    version = ontology_file.value(rdflib.URIRef(MG[:-1]), OWL.versionInfo)
    assert str(version) in page


@pytest.mark.parametrize("ext", sorted(RDFLIB_FORMATS))
def test_ontology_serialisations_are_the_file_graph(sample_app, ontology_file, ext):
    client = sample_app.test_client()
    by_ext = client.get(f"/ontology.{ext}")
    by_accept = client.get("/ontology", headers={"Accept": MEDIA[ext]})
    for r in (by_ext, by_accept):
        assert r.status_code == 200 and r.mimetype == MEDIA[ext]
        served = rdflib.Graph().parse(data=r.data, format=RDFLIB_FORMATS[ext])
        assert isomorphic(served, ontology_file), f"/ontology as {ext} is not the graph of the ontology files"
    assert by_accept.data == by_ext.data
    assert "Accept" in by_accept.headers["Vary"]
    assert by_accept.headers["Content-Location"] == f"/ontology.{ext}"


def test_browsers_get_html_and_etags_revalidate(sample_app):
    client = sample_app.test_client()
    r = client.get("/ontology", headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert r.mimetype == "text/html"
    again = client.get("/ontology.ttl", headers={"If-None-Match": client.get("/ontology.ttl").headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/ontology.xyz").status_code == 404
    assert client.get("/ontology", headers={"Accept": "image/png"}).status_code == 406


# --- shapes -------------------------------------------------------------------

def test_shapes_page_documents_every_shape_and_message(sample_app, shapes_file):
    page = sample_app.test_client().get("/shapes").get_data(as_text=True)
    shapes = {str(s)[len(MGSH):] for k in (SH.NodeShape, SH.PropertyShape)
              for s in shapes_file.subjects(RDF.type, k) if str(s).startswith(MGSH)}
    assert len(shapes) > 10
    missing = sorted(s for s in shapes if f'id="{s}"' not in page)
    assert not missing, f"shapes without an anchor on /shapes: {missing}"
    messages = {str(m) for m in shapes_file.objects(None, SH.message)}
    text = htmllib.unescape(page)
    unshown = sorted(m for m in messages if m not in text)
    assert not unshown, f"messages not shown: {unshown[:3]}"
    org = section(page, "OrganizationShape")
    assert 'href="/ontology#Organization"' in org
    assert "^org-[a-z0-9]+(-[a-z0-9]+)*$" in org


@pytest.mark.parametrize("ext", sorted(RDFLIB_FORMATS))
def test_shapes_serialisations_are_the_file_graph(sample_app, shapes_file, ext):
    r = sample_app.test_client().get(f"/shapes.{ext}")
    assert r.status_code == 200 and r.mimetype == MEDIA[ext]
    assert isomorphic(rdflib.Graph().parse(data=r.data, format=RDFLIB_FORMATS[ext]), shapes_file)


# --- dumps --------------------------------------------------------------------

def _sample_ids(sample_build) -> set[str]:
    return {e.id for e in sample_build.analysis.entities}


@pytest.mark.parametrize("fmt", sorted(DUMP_FORMATS))
def test_each_dump_is_a_stable_gzip_that_parses(sample_app, sample_build, fmt):
    client = sample_app.test_client()
    first = client.get(f"/dumps/movement-graph.{fmt}.gz")
    assert first.status_code == 200
    assert first.mimetype == "application/gzip" and "Content-Encoding" not in first.headers
    assert first.headers["Content-Disposition"].startswith("attachment")
    second = client.get(f"/dumps/movement-graph.{fmt}.gz")
    assert second.data == first.data, "two requests must give identical bytes"
    data = gzip.decompress(first.data)
    quads = list(parse(data, format=DUMP_FORMATS[fmt]))
    subjects = {q.subject.value for q in quads if isinstance(q.subject, NamedNode)}
    assert {BASE + "id/" + i for i in _sample_ids(sample_build)} <= subjects
    plain = client.get(f"/dumps/movement-graph.{fmt}")
    assert plain.status_code == 200 and plain.data == data
    assert plain.headers["Content-Type"].count("charset") <= 1
    assert plain.mimetype == {"ttl": "text/turtle", "nt": "application/n-triples",
                              "nq": "application/n-quads", "jsonld": "application/ld+json"}[fmt]
    assert client.get(f"/dumps/movement-graph.{fmt}.gz",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    checksum = client.get(f"/dumps/movement-graph.{fmt}.gz.sha256").get_data(as_text=True)
    assert checksum.split()[0] == hashlib.sha256(first.data).hexdigest()


def test_nquads_dump_keeps_one_graph_per_entity(sample_app, sample_build):
    data = gzip.decompress(sample_app.test_client().get("/dumps/movement-graph.nq.gz").data)
    ds = Dataset(parse(data, format=RdfFormat.N_QUADS))
    graphs = {q.graph_name.value for q in ds if isinstance(q.graph_name, NamedNode)}
    expected = {BASE + "graph/" + i for i in _sample_ids(sample_build)}
    assert expected <= graphs, f"missing entity graphs: {sorted(expected - graphs)[:3]}"
    assert BASE + "graph/build" not in graphs, "the wall-clock build record is not part of a dump"


def test_dumps_page_lists_formats_and_attribution(sample_app, sample_build):
    client = sample_app.test_client()
    client.get("/dumps/movement-graph.ttl.gz")
    page = client.get("/dumps/").get_data(as_text=True)
    for fmt in DUMP_FORMATS:
        assert f'href="/dumps/movement-graph.{fmt}.gz"' in page
    size = len(client.get("/dumps/movement-graph.ttl.gz").data)
    assert f"{size:,} bytes" in page, "the size of a written dump is shown"
    store = Store.read_only(str(sample_build.store_path))
    credit = next(iter(store.quads_for_pattern(None, NamedNode("https://schema.org/creditText"), None, None)))
    assert credit.object.value in htmllib.unescape(page)
    ttl = gzip.decompress(client.get("/dumps/movement-graph.ttl.gz").data).decode()
    assert ttl.startswith("# " + credit.object.value)


def test_unknown_dump_names_are_404(sample_app):
    client = sample_app.test_client()
    for name in ("movement-graph.csv.gz", "other.ttl.gz", "movement-graph.ttl.zip", "..%2Fcurrent"):
        assert client.get(f"/dumps/{name}").status_code == 404, name


# --- VoID -----------------------------------------------------------------------

@pytest.mark.parametrize("accept,fmt", [("text/turtle", "turtle"), ("application/ld+json", "json-ld"),
                                        ("application/n-triples", "nt"), ("*/*", "turtle")])
def test_well_known_void_describes_the_dataset(sample_app, sample_build, accept, fmt):
    r = sample_app.test_client().get("/.well-known/void", headers={"Accept": accept})
    assert r.status_code == 200 and "Accept" in r.headers["Vary"]
    g = rdflib.Graph().parse(data=r.data, format=fmt)
    triples = g.value(rdflib.URIRef(BASE + "dataset"), rdflib.URIRef(VOID + "triples"))
    assert triples is not None and int(triples) == sample_build.triples
    assert (rdflib.URIRef(BASE + "dataset"), rdflib.URIRef("http://purl.org/dc/terms/license"),
            rdflib.URIRef("https://creativecommons.org/licenses/by/4.0/")) in g


# --- against a real server ----------------------------------------------------------

def test_real_server_serves_dumps_ontology_and_pages(sample_server, ontology_file):
    url = sample_server.url
    with requests.get(url + "/dumps/movement-graph.nq.gz", stream=True, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/gzip"
        assert "attachment" in r.headers["Content-Disposition"] and "Content-Encoding" not in r.headers
        raw = r.raw.read()   # the bytes on the wire, not decoded by the client
    assert int(r.headers["Content-Length"]) == len(raw)
    assert next(iter(parse(gzip.decompress(raw), format=RdfFormat.N_QUADS))) is not None
    part = requests.get(url + "/dumps/movement-graph.nq.gz", headers={"Range": "bytes=0-9"}, timeout=30)
    assert part.status_code == 206 and part.content == raw[:10]
    ttl = requests.get(url + "/ontology", headers={"Accept": "text/turtle"}, timeout=30)
    assert ttl.headers["Content-Type"].startswith("text/turtle")
    assert isomorphic(rdflib.Graph().parse(data=ttl.content, format="turtle"), ontology_file)
    home = requests.get(url + "/", timeout=30)
    assert home.status_code == 200 and "Licensed CC BY 4.0" in home.text
    found = requests.get(url + "/search", params={"q": "access"}, headers={"Accept": "application/json"}, timeout=30)
    assert found.headers["Content-Type"].startswith("application/json") and found.json()["total"] > 0
    assert requests.get(url + "/static/style.css", timeout=30).headers["Content-Type"].startswith("text/css")
    void = requests.get(url + "/.well-known/void", timeout=30)
    assert void.headers["Content-Type"].startswith("text/turtle")
    assert (rdflib.URIRef(BASE + "dataset"), RDF.type, rdflib.URIRef(VOID + "Dataset")) in rdflib.Graph().parse(
        data=void.content, format="turtle")
