"""The query workers and the result writers, without HTTP.

The writers are checked against pyoxigraph's own parsers and serialisers (an
independent implementation of the same W3C formats); the pool is checked with
real worker processes over small stores built here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pyoxigraph import (BlankNode, Literal, NamedNode, Quad, QueryResultsFormat, RdfFormat, Store, parse,
                        parse_query_results)

from mg_rdf.web.query_service import PoolBusy, QueryAnswer, QueryJob, QueryPool, QueryTimeout, evaluate
from mg_rdf.web.results import write_boolean, write_graph, write_solutions

EX = "http://example.org/"
XSD = "http://www.w3.org/2001/XMLSchema#"
# Every cartesian triple of the store, grouped: blocks until it has seen them all, which it never will.
ENDLESS = "SELECT ?a (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i } GROUP BY ?a"


def tricky_store() -> Store:
    """Terms that exercise every escaping rule of the four result formats."""
    store = Store()
    g = NamedNode(EX + "g")
    s = NamedNode(EX + "s?a=1&b='x'")
    objects = [
        Literal('plain, with "quotes", commas\nnew lines\tand tabs \\ backslash'),
        Literal("Grüße <b>&amp;</b>", language="de"),
        Literal("42", datatype=NamedNode(XSD + "integer")),
        Literal("4.2E1", datatype=NamedNode(XSD + "double")),
        Literal("not a number", datatype=NamedNode(XSD + "integer")),
        Literal("true", datatype=NamedNode(XSD + "boolean")),
        Literal("2024-01-01", datatype=NamedNode(XSD + "date")),
        Literal("\u0007bell"),
        NamedNode(EX + "o"),
        BlankNode("b1"),
    ]
    for i, o in enumerate(objects):
        store.add(Quad(s, NamedNode(f"{EX}p{i:02d}"), o, g))
    return store


def solutions(store: Store):
    return store.query("SELECT ?s ?p ?o ?unbound WHERE { ?s ?p ?o OPTIONAL { ?s <http://nowhere/> ?unbound } } "
                       "ORDER BY ?p", use_default_graph_as_union=True)


def reference_rows(store: Store) -> list[list]:
    return [list(row) for row in solutions(store)]


def written(store: Store, fmt: str, cap: int = 100, link: str | None = None):
    r = solutions(store)
    return write_solutions([v.value for v in r.variables], r, fmt, cap, link)


@pytest.mark.parametrize("fmt, oxigraph_format", [("json", QueryResultsFormat.JSON), ("xml", QueryResultsFormat.XML),
                                                  ("tsv", QueryResultsFormat.TSV)])
def test_written_solutions_read_back_as_the_same_terms(fmt, oxigraph_format):
    store = tricky_store()
    out = written(store, fmt)
    parsed = parse_query_results(out.body, format=oxigraph_format)
    assert [v.value for v in parsed.variables] == ["s", "p", "o", "unbound"]
    expected = reference_rows(store)
    if fmt == "xml":   # XML 1.0 cannot carry U+0007 even escaped: it is written as U+FFFD
        expected[7][2] = Literal("\ufffdbell")
    assert [list(row) for row in parsed] == expected
    assert out.count == 10 and not out.truncated


def test_sparql_json_matches_oxigraphs_own_serialiser():
    store = tricky_store()
    ours = json.loads(written(store, "json").body)
    theirs = json.loads(solutions(store).serialize(format=QueryResultsFormat.JSON))
    assert ours == theirs


def test_sparql_xml_is_in_the_results_namespace_and_omits_unbound_variables():
    root = ET.fromstring(written(tricky_store(), "xml").body)
    ns = "{http://www.w3.org/2005/sparql-results#}"
    assert root.tag == ns + "sparql"
    assert [v.get("name") for v in root.iter(ns + "variable")] == ["s", "p", "o", "unbound"]
    results = list(root.iter(ns + "result"))
    assert len(results) == 10
    assert all(b.get("name") != "unbound" for b in root.iter(ns + "binding"))
    lang = [lit for lit in root.iter(ns + "literal") if lit.get("{http://www.w3.org/XML/1998/namespace}lang")]
    assert lang[0].text == "Grüße <b>&amp;</b>"


def test_csv_follows_rfc_4180_and_writes_plain_values():
    body = written(tricky_store(), "csv").body.decode()
    assert body.startswith("s,p,o,unbound\r\n")
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == ["s", "p", "o", "unbound"]
    assert rows[1] == [EX + "s?a=1&b='x'", EX + "p00", 'plain, with "quotes", commas\nnew lines\tand tabs \\ backslash', ""]
    assert rows[2][2] == "Grüße <b>&amp;</b>"     # CSV carries lexical forms only
    assert rows[10][2] == "_:b1"


def test_tsv_abbreviates_only_well_formed_numbers_and_escapes_tabs():
    body = written(tricky_store(), "tsv").body.decode()
    lines = body.split("\n")
    assert lines[0] == "?s\t?p\t?o\t?unbound"
    cells = [line.split("\t") for line in lines[1:-1]]
    assert all(len(c) == 4 for c in cells), "a tab or new line inside a value broke a row"
    objects = [c[2] for c in cells]
    assert objects[2] == "42" and objects[5] == "true"
    # A double is bare only with an exponent: a bare 42 would read back as an integer.
    assert objects[3] != "42" and ("e" in objects[3].lower())
    assert objects[4] == f'"not a number"^^<{XSD}integer>'
    assert objects[1] == '"Grüße <b>&amp;</b>"@de'


@pytest.mark.parametrize("fmt", ["json", "xml", "csv", "tsv"])
def test_a_capped_answer_says_it_was_truncated(fmt):
    store = tricky_store()
    out = written(store, fmt, cap=3, link="http://127.0.0.1/sparql/limits")
    assert out.truncated and out.count == 3
    if fmt == "json":
        doc = json.loads(out.body)
        assert len(doc["results"]["bindings"]) == 3
        assert doc["head"]["link"] == ["http://127.0.0.1/sparql/limits"]
    elif fmt == "xml":
        root = ET.fromstring(out.body)
        assert len(root.findall(".//{http://www.w3.org/2005/sparql-results#}result")) == 3
        assert root.find(".//{http://www.w3.org/2005/sparql-results#}link").get("href").endswith("/limits")
    elif fmt == "csv":
        assert len(list(csv.reader(io.StringIO(out.body.decode(), newline="")))) == 1 + 3
    else:
        assert len(out.body.decode().strip().split("\n")) == 1 + 3


def test_an_answer_of_exactly_the_cap_is_not_truncated():
    out = written(tricky_store(), "json", cap=10, link="http://x/limits")
    assert not out.truncated and out.count == 10
    assert "link" not in json.loads(out.body)["head"]


@pytest.mark.parametrize("fmt, oxigraph_format", [("json", QueryResultsFormat.JSON), ("xml", QueryResultsFormat.XML),
                                                  ("csv", QueryResultsFormat.CSV), ("tsv", QueryResultsFormat.TSV)])
def test_ask_answers_in_every_results_format(fmt, oxigraph_format):
    for value in (True, False):
        body = write_boolean(value, fmt)
        if fmt in ("json", "xml"):
            assert bool(parse_query_results(body, format=oxigraph_format)) is value
        else:
            assert body.decode().strip() == str(value).lower()


@pytest.mark.parametrize("fmt, rdf_format", [("ttl", RdfFormat.TURTLE), ("nt", RdfFormat.N_TRIPLES),
                                             ("jsonld", RdfFormat.JSON_LD), ("rdf", RdfFormat.RDF_XML)])
def test_graphs_are_capped_and_read_back(fmt, rdf_format):
    store = tricky_store()
    triples = store.query("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", use_default_graph_as_union=True)
    out = write_graph(triples, fmt, cap=4, link="http://x/limits")
    assert out.truncated and out.count == 4
    assert len(list(parse(out.body, format=rdf_format))) == 4
    whole = write_graph(store.query("CONSTRUCT WHERE { ?s ?p ?o }", use_default_graph_as_union=True), fmt, cap=100)
    assert not whole.truncated and len(list(parse(whole.body, format=rdf_format))) == 10


def test_ntriples_written_by_oxigraph_equal_the_triples_written_one_by_one():
    """N-Triples of a CONSTRUCT come from pyoxigraph's own writer, stopped past the cap: the bytes,
    count and truncation equal those of the first ``cap`` triples serialised as objects, for
    every cap (the tricky store's literals hold newlines, quotes and non-ASCII text)."""
    store = tricky_store()
    query = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
    everything = list(store.query(query, use_default_graph_as_union=True))
    for cap in range(len(everything) + 2):
        fast = write_graph(store.query(query, use_default_graph_as_union=True), "nt", cap, "http://x/limits")
        slow = write_graph((t for t in store.query(query, use_default_graph_as_union=True)), "nt", cap,
                           "http://x/limits")   # a generator: the objects one by one
        assert (fast.body, fast.count, fast.truncated) == (slow.body, slow.count, slow.truncated), cap
        assert fast.truncated == (cap < len(everything))


# --- evaluation and the worker pool ---

def make_build(store_dir: Path, name: str, triples: int) -> Path:
    build = store_dir / "builds" / name
    build.mkdir(parents=True)
    store = Store(str(build))
    g = NamedNode(EX + "graph/" + name)
    store.bulk_extend(Quad(NamedNode(f"{EX}s{i}"), NamedNode(EX + "p"), Literal(str(i)), g) for i in range(triples))
    store.flush()
    del store
    return build


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pool-store")
    return make_build(root, "a", 1500), make_build(root, "b", 7)


@pytest.fixture()
def pool():
    p = QueryPool(workers=2, max_workers=4, queue_wait=2.0)
    p.start()
    yield p
    p.close()


def count_job(build: Path, **kw) -> QueryJob:
    return QueryJob(str(build), "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", "json", "ttl", 100, **kw)


def count_of(answer: QueryAnswer) -> int:
    assert answer.status == "ok", answer
    return int(json.loads(answer.body)["results"]["bindings"][0]["n"]["value"])


def test_evaluate_uses_the_union_default_graph_and_the_projects_prefixes(builds):
    store = Store.read_only(str(builds[0]))
    assert count_of(evaluate(store, count_job(builds[0]))) == 1500
    job = QueryJob(str(builds[0]), "ASK { ?s rdf:type ?o }", "json", None, 10)   # rdf: is pre-declared
    answer = evaluate(store, job)
    assert answer.status == "ok" and json.loads(answer.body) == {"head": {}, "boolean": False}


def test_evaluate_restricts_the_dataset_to_the_graphs_named_by_the_protocol(builds):
    store = Store.read_only(str(builds[0]))
    assert count_of(evaluate(store, count_job(builds[0], default_graph=[EX + "graph/a"], named_graphs=[]))) == 1500
    assert count_of(evaluate(store, count_job(builds[0], default_graph=[EX + "graph/zzz"], named_graphs=[]))) == 0
    graphs = QueryJob(str(builds[0]), "SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 1", "csv", None, 10,
                      default_graph=[], named_graphs=[EX + "graph/none"])
    assert evaluate(store, graphs).body == b"g\r\n"


def test_evaluate_reports_syntax_errors_and_unacceptable_formats(builds):
    store = Store.read_only(str(builds[0]))
    bad = evaluate(store, QueryJob(str(builds[0]), "SELECT WHERE {", "json", "ttl", 10))
    assert bad.status == "syntax-error" and bad.message
    graph_only = evaluate(store, QueryJob(str(builds[0]), "CONSTRUCT WHERE { ?s ?p ?o }", "json", None, 10))
    assert graph_only.status == "not-acceptable"


def test_a_query_past_its_limit_is_stopped_and_its_worker_replaced(pool, builds):
    before = set(pool.pids)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="1 s"):
        pool.run(QueryJob(str(builds[0]), ENDLESS, "json", None, 10), timeout=1.0)
    took = time.monotonic() - started
    assert took < 1.0 + 1.5, f"the limit of 1 s took {took:.1f} s to enforce"
    assert pool.killed == 1
    killed = before - set(pool.pids)
    for pid in killed:
        assert not _alive(pid), f"worker {pid} still runs after its query was stopped"
    fast = time.monotonic()
    assert count_of(pool.run(count_job(builds[1]), timeout=5)) == 7
    assert time.monotonic() - fast < 1.0
    assert pool.size >= 2


def test_a_fast_query_answers_while_two_slow_ones_run(pool, builds):
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            pool.run(QueryJob(str(builds[0]), ENDLESS, "json", None, 10), timeout=4.0)
        except QueryTimeout:
            pass
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)   # both slow queries are running now
    started = time.monotonic()
    assert count_of(pool.run(count_job(builds[1]), timeout=5)) == 7
    waited = time.monotonic() - started
    assert waited < 1.5, f"a fast query waited {waited:.2f} s behind two slow ones"
    for t in threads:
        t.join()
    assert not errors


def test_workers_follow_the_build_each_job_names(pool, builds):
    a, b = builds
    answers = [count_of(pool.run(count_job(build), timeout=5)) for build in (a, b, a, b)]
    assert answers == [1500, 7, 1500, 7]


def test_requests_wait_for_a_free_worker_only_as_long_as_allowed(builds):
    small = QueryPool(workers=1, max_workers=1, queue_wait=0.5)
    try:
        hog = threading.Thread(target=lambda: _ignore_timeout(small, builds[0], 3.0))
        hog.start()
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(PoolBusy):
            small.run(count_job(builds[1]), timeout=5)
        assert time.monotonic() - started < 1.5
        hog.join()
        assert count_of(small.run(count_job(builds[1]), timeout=5)) == 7
    finally:
        small.close()


def test_a_worker_killed_while_idle_is_dropped_without_costing_a_request(pool, builds):
    count_of(pool.run(count_job(builds[1]), timeout=5))
    victim = pool.pids[-1]   # the next run would take the most recently used worker
    os.kill(victim, 9)
    time.sleep(0.2)
    assert count_of(pool.run(count_job(builds[1]), timeout=5)) == 7
    assert victim not in pool.pids


def _ignore_timeout(pool: QueryPool, build: Path, limit: float) -> None:
    try:
        pool.run(QueryJob(str(build), ENDLESS, "json", None, 10), timeout=limit)
    except QueryTimeout:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
