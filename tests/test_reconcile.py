"""`mg-rdf reconcile` and the reviewed mapping it feeds (data/wikidata-links.tsv).

The endpoint asked is a real SPARQL server on 127.0.0.1 (the oxigraph CLI over
tests/fixtures/wikidata-fixture.ttl), reached directly or through small local
servers that answer 429, hang, or record what they are sent. The expected
candidates follow from how the fixture was written: each of its items is there
to be found, or to be a decoy (see the fixture's header).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
from pyoxigraph import Store

from mg_rdf.integrity import CorpusIndex
from mg_rdf.problems import Severity
from mg_rdf.reconcile import (EndpointError, EndpointUnreachable, OurEntity, SparqlClient, entities_in_store,
                              name_forms, reconcile, retry_after, site_key, site_variants, user_agent)
from mg_rdf.vocab import DataIris
from mg_rdf.wikidata_links import COLUMNS, LINKS_PATH, link_problems, read_links, sameas_quads
from test_federation import LocalServer, free_port, sparql_json, start_fixture_endpoint

HEADER = "\t".join(COLUMNS)

# What the fixture was written to produce for the sample corpus: entity -> {item: confidence}.
SAMPLE_EXPECTED = {
    "org-access-now": {"Q900000001": "high"},                 # same site, same label
    "org-edri": {"Q900000002": "high"},                       # label = our name without "(EDRi)"
    "org-amnesty-international": {"Q900000003": "high"},
    "org-algorithmic-justice-league": {"Q900000004": "high"},  # http, no www: normalised; the film is not proposed
    "org-internet-freedom-foundation": {"Q900000006": "ambiguous", "Q900000007": "ambiguous"},
    "org-open-rights-group": {"Q900000009": "high"},
    "fund-ford-foundation": {"Q900000010": "high"},
    "fund-european-ai-and-society-fund": {"Q900000011": "medium"},   # same site, another label
    "person-joy-buolamwini": {"Q900000012": "low"},            # the photograph is not a human
    "voice-joy-buolamwini": {"Q900000012": "low"},
    "person-bruce-schneier": {"Q900000014": "ambiguous", "Q900000015": "ambiguous"},
    "person-hamid-khan": {"Q900000016": "low"},                # through a lower-case alias
}
# Big Brother Watch has a namesake with another website (Q900000008): never proposed.


@pytest.fixture(scope="module")
def wikidata(tmp_path_factory):
    endpoint = start_fixture_endpoint(tmp_path_factory.mktemp("wikidata-fixture"))
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def sample_store(sample_build) -> Store:
    return Store.read_only(str(sample_build.store_path))


def proposals(path: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in read_links(path).rows:
        if row.status == "proposed":
            out.setdefault(row.entity_id, {})[row.qid] = row.confidence
    return out


def header_file(path: Path, *rows: str, comments: str = "") -> Path:
    path.write_text(comments + HEADER + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# --- proposing candidates ------------------------------------------------------

def test_reconcile_proposes_exactly_the_right_candidates_for_the_sample(sample_store, wikidata, tmp_path, iris):
    out = tmp_path / "links.tsv"
    report = reconcile(sample_store, iris, SparqlClient(wikidata.url, 10), tmp_path / "none.tsv", out)
    assert proposals(out) == SAMPLE_EXPECTED
    assert report.with_candidates == len(SAMPLE_EXPECTED)
    rows = {(r.entity_id, r.qid): r for r in read_links(out).rows}
    ajl = rows[("org-algorithmic-justice-league", "Q900000004")]
    assert "http://ajl.org" in ajl.evidence and "https://www.ajl.org/" in ajl.evidence
    assert "Q900000005 (Coded Bias)" in ajl.evidence          # the decoy is named, not proposed
    assert ajl.wikidata_label.startswith("Algorithmic Justice League")
    assert "differs from our name" in rows[("fund-european-ai-and-society-fund", "Q900000011")].evidence
    assert "accept at most one" in rows[("org-internet-freedom-foundation", "Q900000007")].evidence


def test_reconcile_on_the_real_corpus_finds_the_fixture_items(head_build, wikidata, tmp_path, iris):
    store = Store.read_only(str(head_build.store_path))
    out = tmp_path / "links.tsv"
    reconcile(store, iris, SparqlClient(wikidata.url, 10), tmp_path / "none.tsv", out, batch=40)
    found = proposals(out)
    ids = {e.id for e in entities_in_store(store, iris)}
    for entity, items in {"org-access-now": {"Q900000001": "high"}, "org-edri": {"Q900000002": "high"},
                          "org-amnesty-international": {"Q900000003": "high"},   # corpus: no trailing slash
                          "org-algorithmic-justice-league": {"Q900000004": "high"},
                          "fund-ford-foundation": {"Q900000010": "high"}}.items():
        assert entity in ids, entity
        assert found[entity] == items, (entity, found.get(entity))
    assert "org-big-brother-watch" in ids and "org-big-brother-watch" not in found
    assert all(q != "Q900000005" and q != "Q900000013" for items in found.values() for q in items)


def test_reviewed_rows_are_never_changed_and_rejected_items_never_proposed_again(sample_store, wikidata, tmp_path,
                                                                                  iris):
    accepted = "org-access-now\tQ900000001\taccepted\twebsite\thigh\tchecked by hand  \t\tAda\t2026-11-20\tok"
    rejected = "org-edri\tQ900000002\trejected\twebsite+label\thigh\twrong item?\t\tAda\t2026-11-21\t"
    stale = "org-amnesty-international\tQ900000099\tproposed\tlabel\tlow\told guess\t\t\t\t"
    broken = "org-ford-foundation\tQ1"   # too few columns: reported, kept as written
    links = header_file(tmp_path / "links.tsv", accepted, rejected, stale, broken,
                        comments="# our mapping\n# second comment line\n")
    before = links.read_text(encoding="utf-8")
    reconcile(sample_store, iris, SparqlClient(wikidata.url, 10), links)
    after = links.read_text(encoding="utf-8")
    lines = after.splitlines()
    assert lines[:3] == ["# our mapping", "# second comment line", HEADER]
    for line in (accepted, rejected, broken):
        assert line in lines, line                      # byte for byte, odd spacing included
    assert stale not in lines                           # an old proposal is replaced by this run's
    found = proposals(links)
    assert "org-access-now" not in found                # already linked: not asked about again
    assert "org-edri" not in found                      # its only fitting item was rejected
    assert found["org-amnesty-international"] == {"Q900000003": "high"}
    assert before != after
    reconcile(sample_store, iris, SparqlClient(wikidata.url, 10), links)
    assert links.read_text(encoding="utf-8") == after, "a second run with nothing new changes nothing"


def test_an_unreadable_mapping_stops_reconcile_before_it_asks_anything(sample_store, tmp_path, iris):
    recorder = LocalServer(lambda req: sparql_json(["item"], [])).start()
    links = tmp_path / "links.tsv"
    links.write_text("id\tqid\nacc\tQ1\n")
    try:
        with pytest.raises(Exception, match="header"):
            reconcile(sample_store, iris, SparqlClient(recorder.url, 5), links)
        assert recorder.seen == [] and links.read_text() == "id\tqid\nacc\tQ1\n"
    finally:
        recorder.stop()


# --- being polite to the endpoint -------------------------------------------------

def test_a_429_is_honoured_for_as_long_as_retry_after_says(sample_store, wikidata, tmp_path, iris):
    answered: list[float] = []

    def answer(req):
        if not answered:
            answered.append(time.monotonic())
            return 429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"Too many requests"
        r = requests.post(wikidata.url, data=req.body, headers={"Content-Type": req.headers["Content-Type"],
                                                               "Accept": req.headers["Accept"]})
        return r.status_code, {"Content-Type": r.headers["Content-Type"]}, r.content

    proxy = LocalServer(answer).start()
    try:
        client = SparqlClient(proxy.url, 10)
        out = tmp_path / "links.tsv"
        report = reconcile(sample_store, iris, client, tmp_path / "none.tsv", out)
    finally:
        proxy.stop()
    assert proposals(out) == SAMPLE_EXPECTED
    first, retry = proxy.seen[0], proxy.seen[1]
    assert retry.at - first.at >= 1.0, "the retry came before Retry-After allowed"
    assert retry.body == first.body
    assert report.waited == 1.0 and "waited 1 s" in report.summary()
    assert all(s.headers["User-Agent"] == user_agent() for s in proxy.seen)
    assert re.match(r"^mg-rdf/\d+\.\d+\.\d+ \(https?://\S+; [^)]*\) python-requests/\S+$", user_agent())
    assert all(s.method == "POST" and s.headers["Accept"] == "application/sparql-results+json" for s in proxy.seen)


def test_a_retry_after_longer_than_the_bound_ends_the_run_without_writing(sample_store, tmp_path, iris):
    server = LocalServer(lambda req: (429, {"Retry-After": "3600"}, b"")).start()
    out = tmp_path / "links.tsv"
    try:
        with pytest.raises(EndpointError, match="wait 3600 s"):
            reconcile(sample_store, iris, SparqlClient(server.url, 5), tmp_path / "none.tsv", out)
    finally:
        server.stop()
    assert not out.exists() and len(server.seen) == 1


def test_retry_after_as_an_http_date():
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after(later, default=5) <= 31
    assert retry_after("garbage", default=5) == 5 and retry_after(None, default=7) == 7


def test_requests_are_batched_with_values_blocks(sample_store, wikidata, tmp_path, iris):
    def forward(req):
        r = requests.post(wikidata.url, data=req.body, headers={"Content-Type": req.headers["Content-Type"]})
        return r.status_code, {"Content-Type": r.headers["Content-Type"]}, r.content

    proxy = LocalServer(forward).start()
    try:
        reconcile(sample_store, iris, SparqlClient(proxy.url, 10), tmp_path / "none.tsv", tmp_path / "out.tsv",
                  batch=3)
    finally:
        proxy.stop()
    entities = entities_in_store(sample_store, iris)
    with_sites = [e for e in entities if e.websites]
    queries = [parse_qs(s.body.decode())["query"][0] for s in proxy.seen]
    by_site = [q for q in queries if "VALUES ?site" in q]
    by_label = [q for q in queries if "VALUES ?matched" in q]
    assert len(by_site) == math.ceil(len(with_sites) / 3)
    assert by_label and len(by_site) + len(by_label) == len(queries)
    for q in by_site:   # at most 3 entities' websites, in all their spellings
        assert len(re.findall(r"<https?://[^>]+>", q.split("VALUES ?site", 1)[1].split("}", 1)[0])) <= 3 * 8


def test_an_unreachable_endpoint_gives_a_clear_message_and_writes_nothing(sample_store, tmp_path, iris):
    url = f"http://127.0.0.1:{free_port()}/sparql"     # nothing listens there
    out = tmp_path / "links.tsv"
    with pytest.raises(EndpointUnreachable) as e:
        reconcile(sample_store, iris, SparqlClient(url, 5), tmp_path / "none.tsv", out)
    message = str(e.value)
    assert url in message and "cannot reach" in message and "Connection refused" in message
    assert "Nothing was written" in message and not out.exists()


def test_a_request_that_outlives_its_time_limit_is_abandoned(sample_store, tmp_path, iris):
    server = LocalServer(lambda req: (server.release.wait(30), sparql_json(["item"], []))[1]).start()
    try:
        started = time.monotonic()
        with pytest.raises(EndpointError, match="did not answer within 1 s"):
            reconcile(sample_store, iris, SparqlClient(server.url, 1), tmp_path / "none.tsv", tmp_path / "o.tsv")
        assert time.monotonic() - started < 5
    finally:
        server.stop()


# --- normalising --------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("https://www.ajl.org/", "http://ajl.org"), ("https://edri.org", "https://edri.org/"),
    ("HTTPS://WWW.Example.org/path/", "http://example.org/path"), ("https://x.org:443/", "http://x.org"),
])
def test_spellings_of_one_website_share_a_key(a, b):
    assert site_key(a) == site_key(b)
    assert b.lower().rstrip("/") in {v.lower().rstrip("/").replace(":443", "") for v in site_variants(a)}


@pytest.mark.parametrize("a, b", [("https://example.org/a", "https://example.org/b"),
                                  ("https://example.org/", "https://example.com/"),
                                  ("https://x.example.org/", "https://example.org/")])
def test_different_websites_keep_different_keys(a, b):
    assert site_key(a) != site_key(b)


def test_only_http_urls_have_a_website_key():
    assert site_key("mailto:info@example.org") is None and site_key("info@example.org") is None
    assert site_variants("ftp://example.org/") == []


def test_a_trailing_parenthesis_is_also_tried_without_it():
    assert [f for f, _ in name_forms("European Digital Rights (EDRi)")] == ["European Digital Rights (EDRi)",
                                                                            "European Digital Rights"]
    assert [f for f, _ in name_forms("Access Now")] == ["Access Now"]


def test_entities_in_store_reads_names_types_and_websites(sample_store, iris):
    entities = {e.id: e for e in entities_in_store(sample_store, iris)}
    assert entities["org-edri"] == OurEntity("org-edri", "organization", "European Digital Rights (EDRi)",
                                             ["https://edri.org/"])
    assert entities["lg-open-rights-group-sheffield"].websites == []   # an e-mail address, not a website
    assert not any(e.startswith(("camp-", "event-", "strat-", "msg-")) for e in entities)


# --- the mapping file and the links the build makes of it --------------------------

def links_file(tmp_path: Path, *rows: str) -> Path:
    return header_file(tmp_path / "links.tsv", *rows)


def test_only_accepted_rows_become_same_as_links_with_their_review(sample_build, tmp_path, iris):
    index = CorpusIndex(sample_build.analysis.entities)
    path = links_file(tmp_path,
                      "org-edri\tQ900000002\taccepted\twebsite+label\thigh\tsame website\tEDRi\tAda\t2026-11-20\t",
                      "org-access-now\tQ900000001\tproposed\twebsite+label\thigh\tsame website\t\t\t\t",
                      "org-amnesty-international\tQ900000003\trejected\twebsite\tmedium\t\t\tBo\t2026-11-21\t")
    quads = sameas_quads(index, iris, path)
    graph = f"{iris.base}graph/wikidata-links"
    assert {q.graph_name.value for q in quads} == {graph}
    links = {(q.subject.value, q.predicate.value, q.object.value) for q in quads
             if q.predicate.value.endswith(("#sameAs", "/sameAs"))}
    edri, item = iris.entity("org-edri"), "http://www.wikidata.org/entity/Q900000002"
    assert links == {(edri, "http://www.w3.org/2002/07/owl#sameAs", item), (edri, "https://schema.org/sameAs", item)}
    about = {(q.predicate.value.rsplit("/", 1)[-1].rsplit("#", 1)[-1], q.object.value) for q in quads
             if q.subject.value == graph + "#org-edri"}
    assert {("contributor", "Ada"), ("date", "2026-11-20"), ("subject", edri), ("object", item)} <= about
    described = {q.predicate.value: q.object.value for q in quads if q.subject.value == graph}
    assert described["http://rdfs.org/ns/void#triples"] == "1" and "links.tsv" in described[
        "http://purl.org/dc/terms/source"]


def test_problems_of_the_mapping_name_the_line_and_field(sample_build, tmp_path):
    index = CorpusIndex(sample_build.analysis.entities)
    path = links_file(tmp_path,
                      "org-edri\tQ2x\taccepted\t\t\t\t\tAda\t2026-11-20\t",
                      "org-edri\tQ900000002\tacepted\t\t\t\t\t\t\t",
                      "org-access-now\tQ900000001\taccepted\t\t\t\t\t\t\t",
                      "org-amnesty-international\tQ1\taccepted\t\t\t\t\tAda\t2026-11-20\t",
                      "org-amnesty-international\tQ2\taccepted\t\t\t\t\tAda\t2026-11-20\t",
                      "org-no-such-thing\tQ3\taccepted\t\t\t\t\tAda\t20 Nov\t",
                      "org-ford\tQ4")
    problems = {(p.line, p.field, p.severity) for p in link_problems(index, path)}
    assert (2, "qid", Severity.VIOLATION) in problems            # Q2x
    assert (3, "status", Severity.VIOLATION) in problems         # acepted
    assert (4, "reviewer", Severity.VIOLATION) in problems       # accepted without a reviewer
    assert (5, "status", Severity.VIOLATION) in problems and (6, "status", Severity.VIOLATION) in problems
    assert (7, "reviewed_on", Severity.VIOLATION) in problems
    assert (8, None, Severity.VIOLATION) in problems             # too few columns
    assert sameas_quads(index, DataIris(), path) == []         # none of them is publishable


def test_an_unknown_entity_is_information_not_a_failure(sample_build, tmp_path, iris):
    """The mapping is written for the real corpus; building the sample must not fail on its ids."""
    index = CorpusIndex(sample_build.analysis.entities)
    path = links_file(tmp_path, "org-only-in-the-real-corpus\tQ5\taccepted\t\t\t\t\tAda\t2026-11-20\t")
    assert [p.severity for p in link_problems(index, path)] == [Severity.INFO]
    assert sameas_quads(index, iris, path) == []


def test_one_item_accepted_for_two_entities_is_a_warning_and_both_are_published(sample_build, tmp_path, iris):
    index = CorpusIndex(sample_build.analysis.entities)
    path = links_file(tmp_path, "person-joy-buolamwini\tQ9\taccepted\t\t\t\t\tAda\t2026-11-20\t",
                      "voice-joy-buolamwini\tQ9\taccepted\t\t\t\t\tAda\t2026-11-20\t")
    assert {p.severity for p in link_problems(index, path)} == {Severity.WARNING}
    same = [q for q in sameas_quads(index, iris, path) if q.predicate.value.endswith("owl#sameAs")]
    assert len(same) == 2


def test_the_shipped_mapping_reads_cleanly():
    links = read_links(LINKS_PATH)
    assert not links.unreadable and links.problems == []
    assert all(r.status in ("proposed", "accepted", "rejected") for r in links.rows)


@pytest.mark.corpus
def test_the_shipped_mapping_links_the_real_corpus(head_analysis, iris):
    """Every accepted row of the shipped mapping names an entity of the real corpus whose own
    file cites that Wikidata item, and becomes owl:sameAs + schema:sameAs links."""
    from conftest import CORPUS

    links = read_links(LINKS_PATH)
    accepted = [r for r in links.rows if r.status == "accepted"]
    assert accepted
    assert [p for p in link_problems(head_analysis.index, LINKS_PATH)] == []
    same = {(q.subject.value, q.object.value) for q in sameas_quads(head_analysis.index, iris, LINKS_PATH)
            if q.predicate.value == "http://www.w3.org/2002/07/owl#sameAs"}
    for r in accepted:
        entity = head_analysis.index.by_id[r.entity_id]
        assert f"https://www.wikidata.org/wiki/{r.qid}" in (CORPUS / entity.path).read_text()
        assert (iris.entity(r.entity_id), f"http://www.wikidata.org/entity/{r.qid}") in same
