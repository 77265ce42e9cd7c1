"""Federation with Wikidata, end to end, with no internet.

A real second SPARQL server stands in for the Wikidata Query Service: the
``oxigraph`` CLI (PyPI ``oxigraph``) serving ``tests/fixtures/wikidata-fixture.ttl``
on 127.0.0.1. Real ``mg-rdf serve`` processes allow it (and only it, plus the
small local servers below) with ``--allow-service``. Expected rows are computed
by pyoxigraph in this process from the same fixture and the same store, never
written down. Every server is on a loopback address started by the test; the
refusal of link-local, private and public addresses is tested on the policy
function, which never connects anywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from pyoxigraph import RdfFormat, Store

from live_server import stop_process
from mg_rdf.vocab import MG, DataIris
from mg_rdf.web.federation import from_wikidata_by_website, linked_items_query, website_join_query
from mg_rdf.web.service_policy import ServiceRefused, cap_service_results, endpoint_allowed
from mg_rdf.wikidata_links import WIKIDATA_QUERY_SERVICE

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "wikidata-fixture.ttl"
WDT_P856 = "http://www.wikidata.org/prop/direct/P856"
# In the style of what Blazegraph (behind the Wikidata Query Service) sends to a SERVICE endpoint:
# its own binary format first, then the standard ones.
BLAZEGRAPH_ACCEPT = ("application/x-binary-rdf-results-table;q=1, application/sparql-results+xml;q=0.9, "
                     "application/sparql-results+json;q=0.8, text/tab-separated-values;q=0.5, text/csv;q=0.5")


# --- local servers ----------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def oxigraph_cli() -> str:
    found = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
    if not Path(found).exists():
        pytest.fail("the oxigraph CLI (PyPI package oxigraph, a test dependency) is not installed")
    return found


@dataclass
class FixtureEndpoint:
    """`oxigraph serve-read-only` over the Wikidata-shaped fixture: a real SPARQL server."""
    process: subprocess.Popen
    url: str            # the SPARQL endpoint, http://127.0.0.1:PORT/query

    def stop(self) -> None:
        stop_process(self.process)


def start_fixture_endpoint(directory: Path, fixture: Path = FIXTURE) -> FixtureEndpoint:
    cli = oxigraph_cli()
    location = directory / "oxigraph"
    subprocess.run([cli, "load", "--location", str(location), "--file", str(fixture)], check=True,
                   capture_output=True)
    port = free_port()
    log = open(directory / "oxigraph.log", "wb")
    proc = subprocess.Popen([cli, "serve-read-only", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/query"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"oxigraph exited: {(directory / 'oxigraph.log').read_text()}")
        try:
            if requests.get(url, params={"query": "ASK {}"}, timeout=2).ok:
                return FixtureEndpoint(proc, url)
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("oxigraph serve did not answer")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Answer = Callable[[Seen], tuple[int, dict[str, str], bytes]]


@dataclass
class LocalServer:
    """A tiny HTTP server on a loopback address that records every request and answers as told."""
    answer: Answer
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)   # set on stop: frees slow answers

    def start(self) -> "LocalServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length), time.monotonic())
                owner.seen.append(req)
                status, headers, body = owner.answer(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass   # the caller gave up (killed worker): nothing to do

            do_GET = do_POST = _handle

            def log_message(self, *args) -> None:
                pass

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        self.server = server_class((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server.server_address[1]}/sparql"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def sparql_json(variables: list[str], rows: list[dict[str, str]]) -> tuple[int, dict[str, str], bytes]:
    body = {"head": {"vars": variables},
            "results": {"bindings": [{k: {"type": "uri", "value": v} for k, v in r.items()} for r in rows]}}
    return 200, {"Content-Type": "application/sparql-results+json"}, json.dumps(body).encode()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def wikidata(tmp_path_factory):
    endpoint = start_fixture_endpoint(tmp_path_factory.mktemp("wikidata-fixture"))
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def remotes():
    """Local endpoints with particular behaviours, allowed alongside the fixture."""
    many = LocalServer(lambda req: sparql_json(["x"], [{"x": f"http://example.org/{i}"} for i in range(50)])).start()
    slow_server = LocalServer(lambda req: (slow_server.release.wait(60), sparql_json(["x"], []))[1]).start()
    target = LocalServer(lambda req: sparql_json(["x"], [])).start()
    bouncer = LocalServer(lambda req: (302, {"Location": target.url}, b"")).start()
    yield {"many": many, "slow": slow_server, "redirect": bouncer, "redirect-target": target}
    for s in (many, slow_server, target, bouncer):
        s.stop()


@pytest.fixture(scope="module")
def federating(sample_build, wikidata, remotes, tmp_path_factory):
    """`mg-rdf serve` on the sample store, allowing the fixture and the local remotes, 3 s time limit."""
    from live_server import start_server

    allowed = [wikidata.url, remotes["many"].url, remotes["slow"].url, remotes["redirect"].url]
    args = [a for url in allowed for a in ("--allow-service", url)]
    server = start_server(sample_build.store_path.parent.parent, *args, "--query-timeout", "3",
                          log_dir=tmp_path_factory.mktemp("federating-logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped(sample_build, wikidata, remotes, tmp_path_factory):
    """The same, with answers (and so each SERVICE block) capped at 3 rows."""
    from live_server import start_server

    server = start_server(sample_build.store_path.parent.parent, "--allow-service", wikidata.url,
                          "--allow-service", remotes["many"].url, "--max-results", "3",
                          log_dir=tmp_path_factory.mktemp("capped-logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def our_store(sample_build) -> Store:
    return Store.read_only(str(sample_build.store_path))


@pytest.fixture(scope="module")
def fixture_store() -> Store:
    store = Store()
    store.load(path=str(FIXTURE), format=RdfFormat.TURTLE)
    return store


def website_join(our_store: Store, fixture_store: Store) -> set[tuple[str, str]]:
    """(our entity, fixture item) pairs that share an official website, written exactly alike."""
    ours = {(r["e"].value, r["s"].value) for r in our_store.query(
        f"SELECT ?e ?s WHERE {{ ?e <{MG}website> ?s }}", use_default_graph_as_union=True)}
    theirs = {(r["i"].value, r["s"].value) for r in fixture_store.query(f"SELECT ?i ?s WHERE {{ ?i <{WDT_P856}> ?s }}")}
    return {(e, i) for e, s in ours for i, t in theirs if s == t}


def rows(response: requests.Response, *names: str) -> set[tuple[str, ...]]:
    assert response.status_code == 200, response.text
    return {tuple(b[n]["value"] for n in names) for b in response.json()["results"]["bindings"]}


# --- from our endpoint, calling "Wikidata" --------------------------------------

def test_a_federated_query_joins_our_organisations_with_their_items_by_official_website(
        federating, wikidata, our_store, fixture_store):
    expected = website_join(our_store, fixture_store)
    assert len(expected) >= 5, "the fixture should share several websites with the sample corpus"
    query = f"SELECT ?org ?item WHERE {{ ?org mg:website ?site . SERVICE <{wikidata.url}> {{ ?item wdt:P856 ?site }} }}"
    assert rows(requests.get(federating.url + "/sparql", params={"query": query}), "org", "item") == expected


def test_the_worked_query_of_the_wikidata_page_runs_as_shown(federating, wikidata, our_store, fixture_store):
    sites = sorted({r["s"].value for r in our_store.query(f"SELECT ?s WHERE {{ ?e <{MG}website> ?s }}",
                                                           use_default_graph_as_union=True)})
    query = website_join_query(sites, wikidata.url)
    r = requests.post(federating.url + "/sparql", data={"query": query})
    assert rows(r, "entity", "item") == website_join(our_store, fixture_store)
    labels = {b["item"]["value"]: b["itemLabel"]["value"] for b in r.json()["results"]["bindings"]}
    expected_labels = {row["i"].value: row["l"].value for row in fixture_store.query(
        'SELECT ?i ?l WHERE { ?i <http://www.w3.org/2000/01/rdf-schema#label> ?l FILTER(LANG(?l) = "en") }')}
    assert labels == {item: expected_labels[item] for item in labels}


def test_each_service_block_brings_back_at_most_the_cap_asked_of_the_remote_and_enforced_here(
        capped, wikidata, remotes, fixture_store):
    everything = len(list(fixture_store.query(f"SELECT * WHERE {{ ?i <{WDT_P856}> ?s }}")))
    assert everything > 3
    count = f"SELECT (COUNT(*) AS ?n) WHERE {{ SERVICE <{wikidata.url}> {{ ?item wdt:P856 ?site }} }}"
    r = requests.get(capped.url + "/sparql", params={"query": count})
    assert r.status_code == 200, r.text
    assert int(r.json()["results"]["bindings"][0]["n"]["value"]) == 3
    # A remote endpoint that ignores the LIMIT it is sent still cannot send more than the cap.
    before = len(remotes["many"].seen)
    count_many = f"SELECT (COUNT(*) AS ?n) WHERE {{ SERVICE <{remotes['many'].url}> {{ ?x ?p ?o }} }}"
    r = requests.get(capped.url + "/sparql", params={"query": count_many})
    assert int(r.json()["results"]["bindings"][0]["n"]["value"]) == 3
    sent = remotes["many"].seen[before].body.decode()
    assert "LIMIT 3" in sent, sent


def test_a_slow_remote_endpoint_ends_at_the_time_limit_and_the_server_stays_responsive(federating, remotes):
    query = f"SELECT * WHERE {{ SERVICE <{remotes['slow'].url}> {{ ?s ?p ?o }} }}"
    started = time.monotonic()
    r = requests.get(federating.url + "/sparql", params={"query": query}, timeout=30)
    took = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert "time limit of 3 s" in r.text and "SERVICE" in r.text
    assert r.headers["MG-RDF-Time-Limit"] == "3"
    assert 2.9 <= took < 10
    assert remotes["slow"].seen, "the remote endpoint was asked"
    quick = time.monotonic()
    ok = requests.get(federating.url + "/sparql", params={"query": "ASK { ?s a mg:Campaign }"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["boolean"] is True
    assert time.monotonic() - quick < 2


@pytest.mark.parametrize("make_target", [
    pytest.param(lambda s: s.url, id="127.0.0.1-other-port"),
    pytest.param(lambda s: s.url.replace("127.0.0.1", "localhost"), id="localhost-by-name"),
    pytest.param(lambda s: s.url.replace("/sparql", "/other"), id="allowed-host-other-path"),
])
def test_service_to_a_loopback_endpoint_not_on_the_allow_list_is_refused_before_anything_is_sent(
        federating, make_target):
    recorder = LocalServer(lambda req: sparql_json(["x"], [])).start()
    try:
        target = make_target(recorder)
        query = f"SELECT * WHERE {{ SERVICE <{target}> {{ ?s ?p ?o }} }}"
        r = requests.get(federating.url + "/sparql", params={"query": query})
        assert r.status_code == 400, r.text
        assert target in r.text and "refused" in r.text
        time.sleep(0.2)
        assert recorder.seen == [], "the server must not contact a refused endpoint"
    finally:
        recorder.stop()


def test_service_to_ipv6_loopback_is_refused_before_anything_is_sent(federating):
    if not ipv6_loopback():
        target, recorder = f"http://[::1]:{free_port()}/sparql", None
    else:
        recorder = LocalServer(lambda req: sparql_json(["x"], []), host="::1").start()
        target = recorder.url
    try:
        r = requests.get(federating.url + "/sparql",
                         params={"query": f"SELECT * WHERE {{ SERVICE <{target}> {{ ?s ?p ?o }} }}"})
        assert r.status_code == 400 and "refused" in r.text, r.text
        if recorder is not None:
            time.sleep(0.2)
            assert recorder.seen == []
    finally:
        if recorder is not None:
            recorder.stop()


def test_service_to_a_file_url_is_refused(federating):
    r = requests.get(federating.url + "/sparql",
                     params={"query": "SELECT * WHERE { SERVICE <file:///etc/passwd> { ?s ?p ?o } }"})
    assert r.status_code == 400
    assert "file:///etc/passwd" in r.text and "only http and https" in r.text


def test_a_loopback_host_allowed_only_by_a_prefix_is_still_refused(sample_build, tmp_path):
    from live_server import start_server

    recorder = LocalServer(lambda req: sparql_json(["x"], [])).start()
    prefix = recorder.url.removesuffix("sparql")
    server = start_server(sample_build.store_path.parent.parent, "--allow-service", prefix, log_dir=tmp_path)
    try:
        r = requests.get(server.url + "/sparql",
                         params={"query": f"SELECT * WHERE {{ SERVICE <{recorder.url}> {{ ?s ?p ?o }} }}"})
        assert r.status_code == 400 and "loopback" in r.text, r.text
        assert recorder.seen == []
    finally:
        server.stop()
        recorder.stop()


def test_an_allowed_endpoint_cannot_redirect_the_call_to_another_address(federating, remotes):
    query = f"SELECT * WHERE {{ SERVICE <{remotes['redirect'].url}> {{ ?s ?p ?o }} }}"
    r = requests.get(federating.url + "/sparql", params={"query": query})
    assert r.status_code >= 400, r.text
    assert remotes["redirect"].seen, "the allowed endpoint was asked"
    assert remotes["redirect-target"].seen == [], "the redirect must not be followed"


# --- the policy itself: addresses in, decisions out (nothing is contacted) -----

def no_dns(*args, **kwargs):
    raise AssertionError("no name may be resolved here")


@pytest.mark.parametrize("url, allowed", [
    (WIKIDATA_QUERY_SERVICE, True),
    ("https://query.wikidata.org/bigdata/namespace/wdq/sparql", False),
    ("http://query.wikidata.org/sparql", False),
    ("https://query.wikidata.org.example.net/sparql", False),
    ("https://93.184.215.14/sparql", False),           # a public address, not on the list
    ("http://169.254.169.254/latest/meta-data/", False),  # link-local (cloud metadata)
    ("http://10.0.0.8/sparql", False),
    ("http://192.168.1.10:8080/sparql", False),
    ("http://[fe80::1]/sparql", False),
    ("file:///etc/passwd", False),
])
def test_the_default_allow_list_lets_through_the_wikidata_query_service_only(url, allowed):
    decision, reason = endpoint_allowed(url, (WIKIDATA_QUERY_SERVICE,), resolve=no_dns)
    assert decision is allowed, reason


@pytest.mark.parametrize("address", ["169.254.169.254", "10.1.2.3", "172.20.0.1", "192.168.0.1", "[fd00::1]",
                                     "[fe80::abcd]", "127.0.0.1", "[::1]", "[::ffff:10.0.0.1]"])
def test_internal_addresses_are_refused_even_when_a_prefix_allows_their_host(address):
    decision, reason = endpoint_allowed(f"http://{address}/sparql", (f"http://{address}/",), resolve=no_dns)
    assert not decision and ("private" in reason or "link-local" in reason or "loopback" in reason), reason


def test_the_remote_cap_rewrites_every_service_block_and_nothing_else():
    query = ('SELECT * WHERE { ?a ?b "SERVICE <http://x/> { }" . # SERVICE <http://y/> {\n'
             ' SERVICE <http://e/1> { ?s ?p ?o OPTIONAL { ?o ?q ?r } }\n'
             ' OPTIONAL { SERVICE SILENT <http://e/2> { SELECT ?x WHERE { ?x ?p ?o } } } }')
    capped = cap_service_results(query, 7)
    assert capped.count("LIMIT 7") == 4
    assert '"SERVICE <http://x/> { }"' in capped and "# SERVICE <http://y/> {\n" in capped
    assert "{ SELECT * WHERE { SERVICE <http://e/1> { SELECT * WHERE {  ?s ?p ?o OPTIONAL { ?o ?q ?r }  } " \
           "LIMIT 7 } } LIMIT 7 }" in capped
    assert cap_service_results("SELECT * WHERE { ?s ?p ?o }", 7) == "SELECT * WHERE { ?s ?p ?o }"
    with pytest.raises(ServiceRefused):
        cap_service_results("SELECT * WHERE { SERVICE <http://e/> { ?s ?p ?o }", 7)


# --- being federated with: as another SPARQL service calls us ------------------

def test_a_values_bound_sub_query_as_blazegraph_sends_it_is_answered(sample_server, our_store):
    """The Wikidata Query Service (Blazegraph) POSTs form-encoded query= and queryId=, prefixes first,
    the bindings it already has in a VALUES clause after the WHERE block."""
    sites = ["https://edri.org/", "https://www.accessnow.org/", "https://nowhere.example/"]
    query = (f"\nprefix mg: <{MG}>\nSELECT  ?entity ?name\nWHERE {{\n ?entity mg:website ?site ; mg:name ?name .\n}}\n"
             "VALUES ( ?site ) {\n" + "".join(f"( <{s}> )\n" for s in sites) + "( UNDEF )\n}\n")
    r = requests.post(sample_server.url + "/sparql", data={"query": query, "queryId": "0b8e7c1e-2f7d-4a51"},
                      headers={"Accept": BLAZEGRAPH_ACCEPT, "User-Agent": "Wikidata Query Service; Blazegraph"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/sparql-results+xml")   # its best choice we have
    expected = {(row["e"].value, row["n"].value) for row in our_store.query(
        f"SELECT DISTINCT ?e ?n WHERE {{ ?e <{MG}website> ?s ; <{MG}name> ?n }}", use_default_graph_as_union=True)}
    got = requests.post(sample_server.url + "/sparql", data={"query": query},
                        headers={"Accept": "application/sparql-results+json"})
    assert rows(got, "entity", "name") == expected   # UNDEF leaves ?site free: every entity with a website
    narrow = query.replace("( UNDEF )\n", "")
    answer = rows(requests.post(sample_server.url + "/sparql", data={"query": narrow},
                                headers={"Accept": "application/sparql-results+json"}), "entity")
    assert answer == {(e,) for e, _ in expected if e.endswith(("/org-edri", "/org-access-now"))}


def test_a_standard_federated_call_gets_json_cors_and_a_service_description(sample_server):
    query = "SELECT ?org WHERE { VALUES ?org { <https://w3id.org/movement-graph/id/org-edri> } ?org a mg:Organization }"
    r = requests.get(sample_server.url + "/sparql", params={"query": query},
                     headers={"Accept": "application/sparql-results+json", "Origin": "https://query.wikidata.org"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/sparql-results+json")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert rows(r, "org") == {("https://w3id.org/movement-graph/id/org-edri",)}
    pre = requests.options(sample_server.url + "/sparql", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]
    sd = requests.get(sample_server.url + "/sparql", headers={"Accept": "text/turtle"})
    assert sd.status_code == 200 and "sd:Service" in sd.text and sample_server.url + "/sparql" in sd.text


def test_another_sparql_engine_federates_with_this_endpoint(sample_server, wikidata, our_store, fixture_store):
    """The fixture server plays the Wikidata Query Service: it runs the page's query for Wikidata's side
    (without Wikidata's label service, which only Wikidata has) and calls this endpoint for our part."""
    text = from_wikidata_by_website(sample_server.url + "/sparql")
    text = "\n".join(line for line in text.splitlines() if "wikibase:label" not in line)
    text = "PREFIX wdt: <http://www.wikidata.org/prop/direct/>\n" + text.replace("?itemLabel ", "")
    r = requests.post(wikidata.url, data={"query": text}, headers={"Accept": "application/sparql-results+json"})
    expected = {(e, i) for e, i in website_join(our_store, fixture_store)
                if (e.rsplit("/", 1)[1]).startswith("org-")}
    assert rows(r, "entity", "item") == expected and expected


# --- the page -------------------------------------------------------------------

@pytest.fixture()
def page_app(sample_build):
    from mg_rdf.web import create_app, federation

    app = create_app({"STORE_PATH": sample_build.store_path.parent.parent, "TESTING": True,
                      "SERVICE_ALLOWLIST": (WIKIDATA_QUERY_SERVICE,)})
    if "federation" not in app.blueprints:   # until the app factory registers it
        app.register_blueprint(federation.bp)
    return app


def test_the_wikidata_page_lists_every_alignment_of_the_ontology(page_app):
    from rdflib import Graph, URIRef

    g = Graph().parse(ROOT / "ontology" / "mg.ttl")
    expected = {(str(s)[len(MG):], str(o).rsplit("/", 1)[1]) for s, p, o in g
                if str(o).startswith("http://www.wikidata.org/") and str(s).startswith(MG)
                and p in (URIRef("http://www.w3.org/2000/01/rdf-schema#subPropertyOf"),
                          URIRef("http://www.w3.org/2000/01/rdf-schema#subClassOf"),
                          URIRef("http://www.w3.org/2004/02/skos/core#closeMatch"))}
    html = page_app.test_client().get("/wikidata").get_data(as_text=True)
    for term, wid in expected:
        assert f"<code>mg:{term}</code>" in html and f"{wid}</code>" in html, (term, wid)
    assert "https://query.wikidata.org/sparql" in html
    assert "Not yet" in html and "CC BY 4.0" in html


def test_the_page_names_the_allow_list_and_the_limits_it_runs_under(page_app):
    page_app.config.update(SERVICE_ALLOWLIST=(), QUERY_TIMEOUT=4.0, MAX_RESULTS=77)
    html = page_app.test_client().get("/wikidata").get_data(as_text=True)
    assert "SERVICE turned off" in html and "(4 s" in html
    assert re.search(r"at most\s+77 rows", html)


def test_linked_entities_appear_on_the_page_and_in_its_worked_query(sample_build, tmp_path, iris):
    from mg_rdf.web import create_app, federation

    store_dir = linked_copy(sample_build, tmp_path, iris, {"org-edri": "Q900000002", "org-access-now": "Q900000001"})
    app = create_app({"STORE_PATH": store_dir, "TESTING": True})
    if "federation" not in app.blueprints:
        app.register_blueprint(federation.bp)
    html = app.test_client().get("/wikidata").get_data(as_text=True)
    assert "2 entities are" in html and "wd:Q900000001" in html and "wd:Q900000002" in html


def linked_copy(sample_build, tmp_path: Path, iris: DataIris, links: dict[str, str]) -> Path:
    """A copy of the sample store with accepted links loaded, as the build will load them."""
    from mg_rdf.integrity import CorpusIndex
    from mg_rdf.wikidata_links import sameas_quads

    store_dir = tmp_path / "store"
    shutil.copytree(sample_build.store_path.parent.parent, store_dir, symlinks=True)
    build_dir = store_dir / "current"
    links_file = tmp_path / "links.tsv"
    header = "entity_id\tqid\tstatus\tmatch\tconfidence\tevidence\twikidata_label\treviewer\treviewed_on\tnote\n"
    links_file.write_text(header + "".join(f"{e}\t{q}\taccepted\twebsite+label\thigh\tsame website\t\ttester\t"
                                           f"2026-11-27\t\n" for e, q in links.items()))
    index = CorpusIndex(sample_build.analysis.entities)
    store = Store(str(build_dir.resolve()))
    store.extend(sameas_quads(index, iris, links_file))
    store.flush()
    del store
    return store_dir


def test_links_are_queryable_and_the_linked_items_query_runs_against_the_fixture(
        sample_build, wikidata, tmp_path, iris):
    from live_server import start_server

    store_dir = linked_copy(sample_build, tmp_path, iris, {"org-edri": "Q900000002", "fund-ford-foundation":
                                                           "Q900000010"})
    server = start_server(store_dir, "--allow-service", wikidata.url, log_dir=tmp_path)
    try:
        same = requests.get(server.url + "/sparql", params={"query": "SELECT ?e ?i WHERE { ?e owl:sameAs ?i }"})
        assert rows(same, "e", "i") == {(iris.entity("org-edri"), "http://www.wikidata.org/entity/Q900000002"),
                                        (iris.entity("fund-ford-foundation"),
                                         "http://www.wikidata.org/entity/Q900000010")}
        r = requests.get(server.url + "/sparql", params={"query": linked_items_query(["Q900000002", "Q900000010"],
                                                                                     wikidata.url)})
        assert rows(r, "entity", "website") == {(iris.entity("org-edri"), "https://edri.org/"),
                                                (iris.entity("fund-ford-foundation"), "https://www.fordfoundation.org/")}
    finally:
        server.stop()
