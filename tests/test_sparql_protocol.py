"""The SPARQL 1.1 Protocol endpoint, tested against real `mg-rdf serve` processes.

Expected values come from the sample corpus files (entities/…) or from
pyoxigraph run directly on the same store, never from constants.
"""

from __future__ import annotations

import csv
import io
import shutil
import threading
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from pyoxigraph import NamedNode, QueryResultsFormat, RdfFormat, Store, parse, parse_query_results

from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.vocab import MG, DataIris

ROOT = Path(__file__).resolve().parents[1]
SD = "http://www.w3.org/ns/sparql-service-description#"
SPARQL_XML = "{http://www.w3.org/2005/sparql-results#}"
CAMPAIGNS = "SELECT ?c WHERE { ?c a mg:Campaign } ORDER BY ?c"     # mg: is pre-declared
CONSTRUCT_CAMPAIGNS = "CONSTRUCT { ?c a mg:Campaign ; mg:name ?n } WHERE { ?c a mg:Campaign ; mg:name ?n }"
ENDLESS = "SELECT ?a (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i } GROUP BY ?a"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def sample_ids(folder: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "entities" / folder).glob("*.md"))


@pytest.fixture(scope="module")
def endpoint(sample_server) -> str:
    return sample_server.url + "/sparql"


@pytest.fixture(scope="module")
def limited(sample_build, tmp_path_factory):
    """A server with a 1 s time limit and answers of at most 5 rows or triples."""
    from live_server import start_server

    server = start_server(sample_build.store_path.parent.parent, "--query-timeout", "1", "--max-results", "5",
                          log_dir=tmp_path_factory.mktemp("limited-logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sample_store(sample_build) -> Store:
    return Store.read_only(str(sample_build.store_path))


def campaign_iris(iris: DataIris) -> list[str]:
    return sorted(iris.entity(i) for i in sample_ids("campaigns"))


def bindings(response: requests.Response, var: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [b[var]["value"] for b in response.json()["results"]["bindings"] if var in b]


# --- the three ways to send a query ---

def test_get_post_form_and_post_body_give_the_same_answer(endpoint, iris):
    expected = campaign_iris(iris)
    via_get = requests.get(endpoint, params={"query": CAMPAIGNS})
    via_form = requests.post(endpoint, data={"query": CAMPAIGNS})
    via_body = requests.post(endpoint, data=CAMPAIGNS.encode(), headers={"Content-Type": "application/sparql-query"})
    for r in (via_get, via_form, via_body):
        assert r.headers["Content-Type"] == "application/sparql-results+json"
        assert bindings(r, "c") == expected


def test_post_body_may_carry_a_charset_parameter(endpoint, iris):
    r = requests.post(endpoint, data=CAMPAIGNS.encode(),
                      headers={"Content-Type": "application/sparql-query; charset=UTF-8"})
    assert bindings(r, "c") == campaign_iris(iris)


# --- formats ---

def parse_solutions(r: requests.Response, key: str) -> list[str]:
    if key == "json":
        return bindings(r, "c")
    if key == "xml":
        return [u.text for u in ET.fromstring(r.content).iter(SPARQL_XML + "uri")]
    if key == "csv":
        rows = list(csv.reader(io.StringIO(r.text, newline="")))
        assert rows[0] == ["c"]
        return [row[0] for row in rows[1:]]
    parsed = parse_query_results(r.content, format=QueryResultsFormat.TSV)
    return [row["c"].value for row in parsed]


RESULT_TYPES = {"json": "application/sparql-results+json", "xml": "application/sparql-results+xml",
                "csv": "text/csv; charset=utf-8", "tsv": "text/tab-separated-values; charset=utf-8"}


@pytest.mark.parametrize("key", list(RESULT_TYPES))
def test_select_answers_in_each_results_format_by_accept(endpoint, iris, key):
    media = RESULT_TYPES[key].split(";")[0]
    r = requests.get(endpoint, params={"query": CAMPAIGNS}, headers={"Accept": media})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == RESULT_TYPES[key]
    assert "Accept" in r.headers["Vary"]
    assert parse_solutions(r, key) == campaign_iris(iris)


@pytest.mark.parametrize("key", list(RESULT_TYPES))
def test_select_answers_in_each_results_format_by_format_parameter(endpoint, iris, key):
    for value in (key, RESULT_TYPES[key].split(";")[0]):
        r = requests.get(endpoint, params={"query": CAMPAIGNS, "format": value}, headers={"Accept": "text/turtle"})
        assert r.headers["Content-Type"] == RESULT_TYPES[key], value
        assert parse_solutions(r, key) == campaign_iris(iris)


GRAPH_TYPES = {"ttl": ("text/turtle", RdfFormat.TURTLE), "nt": ("application/n-triples", RdfFormat.N_TRIPLES),
               "jsonld": ("application/ld+json", RdfFormat.JSON_LD), "rdf": ("application/rdf+xml", RdfFormat.RDF_XML)}


@pytest.mark.parametrize("key", list(GRAPH_TYPES))
def test_construct_answers_in_each_graph_format_by_accept_and_by_format(endpoint, sample_store, key):
    media, rdf_format = GRAPH_TYPES[key]
    expected = set(sample_store.query(CONSTRUCT_CAMPAIGNS, prefixes={"mg": MG}, use_default_graph_as_union=True))
    assert expected
    for r in (requests.get(endpoint, params={"query": CONSTRUCT_CAMPAIGNS}, headers={"Accept": media}),
              requests.post(endpoint, data={"query": CONSTRUCT_CAMPAIGNS, "format": key})):
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].split(";")[0] == media
        assert {q.triple for q in parse(r.content, format=rdf_format)} == expected


def test_describe_answers_with_the_entitys_triples(endpoint, iris):
    entity = iris.entity(sample_ids("campaigns")[0])
    r = requests.get(endpoint, params={"query": f"DESCRIBE <{entity}>", "format": "nt"})
    triples = list(parse(r.content, format=RdfFormat.N_TRIPLES))
    assert triples and all(t.subject == NamedNode(entity) for t in triples)


def test_q_values_choose_the_format(endpoint):
    r = requests.get(endpoint, params={"query": CAMPAIGNS},
                     headers={"Accept": "application/sparql-results+json;q=0.5, text/csv;q=0.9, text/html;q=0.1"})
    assert r.headers["Content-Type"].startswith("text/csv")
    r = requests.get(endpoint, params={"query": CONSTRUCT_CAMPAIGNS},
                     headers={"Accept": "text/turtle;q=0.2, application/n-triples, */*;q=0.1"})
    assert r.headers["Content-Type"].startswith("application/n-triples")


def test_defaults_are_sparql_json_and_turtle(endpoint):
    for accept in (None, "", "*/*", "text/html, */*;q=0.8"):
        headers = {"Accept": accept}   # None: requests sends no Accept header at all
        assert requests.get(endpoint, params={"query": CAMPAIGNS}, headers=headers).headers[
            "Content-Type"] == "application/sparql-results+json"
        assert requests.get(endpoint, params={"query": CONSTRUCT_CAMPAIGNS}, headers=headers).headers[
            "Content-Type"].startswith("text/turtle")


def test_ask_answers_true_and_false(endpoint):
    yes = requests.get(endpoint, params={"query": "ASK { ?c a mg:Campaign }"})
    no = requests.get(endpoint, params={"query": "ASK { ?c a mg:NoSuchClass }"}, headers={"Accept": "text/csv"})
    assert yes.json() == {"head": {}, "boolean": True}
    assert no.text.strip() == "false"


# --- status codes ---

def test_a_syntax_error_is_400_with_the_parsers_message(endpoint):
    bad = "SELECT ?x WHERE { ?x a mg:Campaign"
    with pytest.raises(SyntaxError) as parser:
        Store().query(bad, prefixes={"mg": MG})
    r = requests.get(endpoint, params={"query": bad})
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert str(parser.value) in r.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(endpoint, method):
    r = requests.request(method, endpoint, data="x")
    assert r.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Allow"].split(",")}


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "multipart/form-data; boundary=x"])
def test_other_post_content_types_are_415(endpoint, content_type):
    r = requests.post(endpoint, data=CAMPAIGNS.encode(), headers={"Content-Type": content_type})
    assert r.status_code == 415
    assert "application/sparql-query" in r.text


@pytest.mark.parametrize("query, params, headers", [
    (CAMPAIGNS, {}, {"Accept": "image/png"}),
    (CAMPAIGNS, {}, {"Accept": "text/turtle"}),
    (CONSTRUCT_CAMPAIGNS, {}, {"Accept": "text/csv"}),
    (CONSTRUCT_CAMPAIGNS, {"format": "csv"}, {}),
    (CAMPAIGNS, {"format": "ttl"}, {}),
    (CAMPAIGNS, {"format": "pdf"}, {}),
])
def test_nothing_acceptable_is_406(endpoint, query, params, headers):
    r = requests.get(endpoint, params={"query": query, **params}, headers=headers)
    assert r.status_code == 406, r.text
    assert "json" in r.text and "ttl" in r.text


@pytest.mark.parametrize("send", [
    lambda url: requests.post(url, data={"format": "json"}),
    lambda url: requests.get(url, params={"query": [CAMPAIGNS, CAMPAIGNS]}),
    lambda url: requests.post(url, data={"query": CAMPAIGNS, "update": "CLEAR ALL"}),
    lambda url: requests.get(url, params={"query": "   "}),
    lambda url: requests.post(url + "?query=ASK%7B%7D", data=b"ASK {}",
                              headers={"Content-Type": "application/sparql-query"}),
    lambda url: requests.get(url, params={"default-graph-uri": "http://example.org/g"}),
    lambda url: requests.get(url, params={"query": CAMPAIGNS, "default-graph-uri": "not an iri"}),
    lambda url: requests.get(url, params={"query": CAMPAIGNS, "timeout": "soon"}),
    lambda url: requests.get(url, params={"query": CAMPAIGNS, "timeout": "-1"}),
])
def test_malformed_requests_are_400(endpoint, send):
    r = send(endpoint)
    assert r.status_code == 400, r.text
    assert r.text.strip()


def count_quads(endpoint: str) -> int:
    r = requests.get(endpoint, params={"query": "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"})
    return int(bindings(r, "n")[0])


def test_updates_are_refused_and_change_nothing(endpoint):
    before = count_quads(endpoint)
    insert = "INSERT DATA { <http://example.org/s> <http://example.org/p> <http://example.org/o> }"
    attempts = [
        requests.get(endpoint, params={"update": insert}),
        requests.post(endpoint, data={"update": insert}),
        requests.post(endpoint, data=insert.encode(), headers={"Content-Type": "application/sparql-update"}),
        requests.post(endpoint, data={"query": insert}),
        requests.get(endpoint, params={"query": "PREFIX ex: <http://example.org/>\n# comment\nDELETE WHERE { ?s ?p ?o }"}),
        requests.get(endpoint, params={"query": "CLEAR ALL"}),
    ]
    for r in attempts:
        assert r.status_code == 403, r.text
        assert "read-only" in r.text
    assert count_quads(endpoint) == before
    r = requests.get(endpoint, params={"query": "ASK { <http://example.org/s> ?p ?o }"})
    assert r.json()["boolean"] is False


# --- CORS ---

def test_answers_and_errors_allow_any_origin(endpoint):
    origin = {"Origin": "http://127.0.0.1:9"}
    ok = requests.get(endpoint, params={"query": CAMPAIGNS}, headers=origin)
    bad = requests.get(endpoint, params={"query": "SELECT"}, headers=origin)
    for r in (ok, bad):
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "MG-RDF-Truncated" in ok.headers["Access-Control-Expose-Headers"]


def test_preflight_is_answered_with_methods_and_headers(endpoint):
    r = requests.options(endpoint, headers={"Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "content-type, accept"})
    assert r.status_code in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert "content-type" in r.headers["Access-Control-Allow-Headers"].lower()


# --- the service description ---

def service_description(endpoint: str, media: str, rdf_format: RdfFormat) -> list:
    r = requests.get(endpoint, headers={"Accept": media})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == media
    return [q.triple for q in parse(r.content, format=rdf_format)]


def test_the_service_description_names_the_endpoint_and_what_it_supports(endpoint, sample_store, iris):
    triples = service_description(endpoint, "text/turtle", RdfFormat.TURTLE)

    def objects(predicate: str) -> set[str]:
        return {t.object.value for t in triples if t.predicate.value == predicate}

    assert objects(SD + "endpoint") == {endpoint}
    assert SD + "SPARQL11Query" in objects(SD + "supportedLanguage")
    assert SD + "UnionDefaultGraph" in objects(SD + "feature")
    assert objects(SD + "defaultEntailmentRegime") == {"http://www.w3.org/ns/entailment/Simple"}
    formats = objects(SD + "resultFormat")
    for name in ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV", "SPARQL_Results_TSV",
                 "Turtle", "N-Triples", "JSON-LD", "RDF_XML"):
        assert "http://www.w3.org/ns/formats/" + name in formats
    assert objects(SD + "defaultDataset") == {iris.dataset}
    names = objects(SD + "name")
    assert names == {g.value for g in sample_store.named_graphs()}
    counts = [int(t.object.value) for t in triples if t.predicate.value == "http://rdfs.org/ns/void#triples"]
    assert sum(counts) > len(sample_store)   # every graph's count plus the dataset's own figures


@pytest.mark.parametrize("media, rdf_format", [("application/ld+json", RdfFormat.JSON_LD),
                                               ("application/n-triples", RdfFormat.N_TRIPLES),
                                               ("application/rdf+xml", RdfFormat.RDF_XML)])
def test_the_service_description_in_other_rdf_formats_holds_the_same_triples(endpoint, media, rdf_format):
    turtle = service_description(endpoint, "text/turtle", RdfFormat.TURTLE)
    other = service_description(endpoint, media, rdf_format)
    assert len(other) == len(turtle)


def test_a_browser_asking_for_the_endpoint_is_sent_to_the_query_page(endpoint, sample_server):
    r = requests.get(endpoint, headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False)
    assert r.status_code == 303
    assert r.headers["Location"].endswith("/query")


# --- the dataset ---

def test_default_graph_uri_and_named_graph_uri_change_the_dataset(endpoint, iris):
    entities = "SELECT DISTINCT ?e WHERE { ?g mg:describes ?e } ORDER BY ?e"
    everyone = bindings(requests.get(endpoint, params={"query": entities}), "e")
    assert len(everyone) == len(list((ROOT / "entities").glob("*/*.md")))
    one, two = sample_ids("campaigns")[0], sample_ids("persons")[0]
    only_one = requests.get(endpoint, params={"query": entities, "default-graph-uri": iris.graph(one)})
    assert bindings(only_one, "e") == [iris.entity(one)]
    both = requests.post(endpoint, data={"query": entities, "default-graph-uri": [iris.graph(one), iris.graph(two)]})
    assert bindings(both, "e") == sorted([iris.entity(one), iris.entity(two)])
    graphs = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g"
    named = requests.get(endpoint, params={"query": graphs, "named-graph-uri": [iris.graph(two), iris.graph(one)]})
    assert bindings(named, "g") == sorted([iris.graph(one), iris.graph(two)])
    # Named graphs only: the default graph is then empty, as the protocol says.
    assert bindings(requests.get(endpoint, params={"query": entities, "named-graph-uri": iris.graph(one)}), "e") == []


# --- limits ---

def test_a_query_past_the_time_limit_is_stopped_and_the_server_still_answers(limited, iris):
    endpoint = limited.url + "/sparql"
    started = time.monotonic()
    r = requests.get(endpoint, params={"query": ENDLESS}, timeout=30)
    took = time.monotonic() - started
    assert r.status_code == 503, r.text[:300]
    assert "time limit of 1 s" in r.text
    assert r.headers["MG-RDF-Time-Limit"] == "1"
    assert took < 1 + 2, f"a 1 s limit took {took:.1f} s to enforce"
    started = time.monotonic()
    assert bindings(requests.get(endpoint, params={"query": CAMPAIGNS}, timeout=10), "c") == campaign_iris(iris)[:5]
    assert time.monotonic() - started < 1.0


def test_the_time_limit_answer_is_made_like_every_other_answer(limited):
    """The 503 is written by the serving process's watchdog while the query still runs in
    pyoxigraph: it still carries CORS, the request id, the security headers, and is logged."""
    r = requests.post(limited.url + "/sparql", data=ENDLESS.encode(), timeout=30,
                      headers={"Content-Type": "application/sparql-query", "X-Request-Id": "slow-one-42",
                               "Origin": "https://example.org"})
    assert r.status_code == 503, r.text[:300]
    assert r.text.startswith("Query stopped: the query ran longer than its time limit of 1 s")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Content-Length"] == str(len(r.content))
    assert r.headers["X-Request-Id"] == "slow-one-42"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "MG-RDF-Time-Limit" in r.headers["Access-Control-Expose-Headers"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in limited.log.read_text().splitlines()
                 if line.startswith("{") and '"slow-one-42"' in line]
        if lines:
            break
        time.sleep(0.1)
    assert [(e["status"], e["query_time_limit_s"], e["method"]) for e in lines] == [(503, 1.0, "POST")]


def test_a_request_may_lower_the_time_limit_but_never_raise_it(endpoint, limited):
    started = time.monotonic()
    r = requests.get(endpoint, params={"query": ENDLESS, "timeout": "0.5"}, timeout=30)
    assert r.status_code == 503 and "0.5 s" in r.text
    assert time.monotonic() - started < 0.5 + 2
    started = time.monotonic()
    r = requests.get(limited.url + "/sparql", params={"query": ENDLESS, "timeout": "100"}, timeout=30)
    assert r.status_code == 503 and "time limit of 1 s" in r.text
    assert time.monotonic() - started < 1 + 2


def test_a_fast_query_answers_while_two_slow_ones_run(endpoint, iris):
    slow_status: list[int] = []

    def slow() -> None:
        slow_status.append(requests.get(endpoint, params={"query": ENDLESS, "timeout": "4"}, timeout=30).status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.7)   # both slow queries are running
    started = time.monotonic()
    r = requests.get(endpoint, params={"query": CAMPAIGNS}, timeout=10)
    waited = time.monotonic() - started
    assert bindings(r, "c") == campaign_iris(iris)
    for t in threads:
        t.join()
    assert slow_status == [503, 503], "the slow queries should still have been running"
    assert waited < 1.5, f"a fast query waited {waited:.2f} s behind two slow ones"


def test_truncated_answers_are_signalled(limited, sample_store):
    endpoint = limited.url + "/sparql"
    r = requests.get(endpoint, params={"query": "SELECT * WHERE { ?s ?p ?o }"})
    assert r.status_code == 200
    assert r.headers["MG-RDF-Truncated"] == "true" and r.headers["MG-RDF-Result-Limit"] == "5"
    doc = r.json()
    assert len(doc["results"]["bindings"]) == 5
    link = doc["head"]["link"][0]
    explanation = requests.get(link)
    assert explanation.status_code == 200 and "MG-RDF-Truncated" in explanation.text
    graph = requests.get(endpoint, params={"query": "CONSTRUCT WHERE { ?s ?p ?o }", "format": "nt"})
    assert graph.headers["MG-RDF-Truncated"] == "true"
    assert len(list(parse(graph.content, format=RdfFormat.N_TRIPLES))) == 5
    xml = requests.get(endpoint, params={"query": "SELECT * WHERE { ?s ?p ?o }", "format": "xml"})
    assert ET.fromstring(xml.content).find(f"{SPARQL_XML}head/{SPARQL_XML}link").get("href") == link
    small = requests.get(endpoint, params={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 5"})
    assert "MG-RDF-Truncated" not in small.headers and "link" not in small.json()["head"]


# --- SERVICE ---

@pytest.mark.parametrize("query, named", [
    ("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", "http://example.org/sparql"),
    ("SELECT * WHERE { ?x a mg:Campaign . SERVICE SILENT wd:Q42 { ?x ?p ?o } }", "http://www.wikidata.org/entity/Q42"),
    ("SELECT * WHERE { BIND(<http://example.org/sparql> AS ?e) SERVICE ?e { ?s ?p ?o } }", "?e"),
])
def test_service_is_refused_before_evaluation(endpoint, query, named):
    r = requests.get(endpoint, params={"query": query})
    assert r.status_code == 400
    assert named in r.text and "refused" in r.text


def test_an_allow_listed_loopback_endpoint_can_be_federated(sample_build, sample_server, tmp_path, iris):
    from live_server import start_server

    target = sample_server.url + "/sparql"
    federating = start_server(sample_build.store_path.parent.parent, "--allow-service", target, log_dir=tmp_path)
    try:
        query = f"SELECT ?c WHERE {{ SERVICE <{target}> {{ ?c a mg:Campaign }} }} ORDER BY ?c"
        assert bindings(requests.get(federating.url + "/sparql", params={"query": query}), "c") == campaign_iris(iris)
        other = f"SELECT ?c WHERE {{ SERVICE <{target}2> {{ ?c a mg:Campaign }} }}"
        assert requests.get(federating.url + "/sparql", params={"query": other}).status_code == 400
    finally:
        federating.stop()


# --- a new build becomes current ---

def test_queries_follow_a_new_build_of_the_store(tmp_path, iris):
    from live_server import start_server

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus, repository=""), store, iris)
    server = start_server(store, log_dir=tmp_path)
    people = "SELECT ?p WHERE { ?p a mg:Person } ORDER BY ?p"
    try:
        before = bindings(requests.get(server.url + "/sparql", params={"query": people}), "p")
        assert len(before) == len(sample_ids("persons"))
        gone = sample_ids("persons")[0]
        (corpus / "entities" / "persons" / f"{gone}.md").unlink()
        build(FolderSource(corpus, repository=""), store, iris)
        after = bindings(requests.get(server.url + "/sparql", params={"query": people}), "p")
        assert after == [p for p in before if p != iris.entity(gone)]
    finally:
        server.stop()
