"""The named-query web API over the real corpus: formats, errors, paging links, caching, the
docs page and the OpenAPI document (checked against what the server really answers)."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote, urlsplit

import jsonschema_rs
import pytest

from mg_rdf import config
from mg_rdf.named_queries import load_queries

ID = "https://w3id.org/movement-graph/id/"
QUERIES = load_queries(config.QUERIES_DIR)


@pytest.fixture(scope="module")
def client(head_build):
    from mg_rdf.web import create_app

    app = create_app({"STORE_PATH": head_build.store_path.parent.parent, "TESTING": True})
    return app.test_client()


@pytest.fixture(scope="module")
def openapi(client) -> dict:
    r = client.get("/api/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.json


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_the_catalogue_lists_every_query_with_its_parameters_and_columns(client):
    r = client.get("/api/queries")
    assert r.status_code == 200 and r.mimetype == "application/json"
    listed = {q["name"]: q for q in r.json}
    assert set(listed) == {q.name for q in QUERIES} and len(listed) >= 15
    org = listed["campaigns-of-organisation"]
    assert org["paginate"] is True and org["url"].endswith("/api/queries/campaigns-of-organisation")
    assert {p["name"]: (p["type"], p["required"]) for p in org["parameters"]} == {
        "org": ("entity", True), "role": ("enum", False)}
    assert [c["name"] for c in org["columns"]][:3] == ["campaign", "campaign_id", "name"]
    assert "SELECT" in org["sparql"]


def test_the_docs_page_shows_every_query_and_its_example_links_answer(client):
    r = client.get("/api/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for q in QUERIES:
        assert f'id="{q.name}"' in page and q.title.replace("'", "&#39;") in page, q.name
        assert "SELECT" in page
    links = set(re.findall(r'href="(/api/queries/[^"]+)"', page))
    assert len(links) >= 3 * len(QUERIES)
    for link in sorted(links):
        answer = client.get(link.replace("&amp;", "&"))
        assert answer.status_code == 200, (link, answer.get_data(as_text=True)[:300])
    assert 'href="/api/openapi.json"' in page


def test_json_csv_and_sparql_json_hold_the_same_rows(client):
    url = "/api/queries/funders-of-campaign{}?campaign=camp-edri-reclaim-your-face-eu-citizens-initiative-2020-2022"
    rows = client.get(url.format(".json")).json["results"]
    table = list(csv.reader(io.StringIO(client.get(url.format(".csv")).get_data(as_text=True))))
    srj = client.get(url.format(".srj")).json
    assert table[0] == srj["head"]["vars"] == list(rows[0])
    as_text = [["" if v is None else str(v) for v in row.values()] for row in rows]
    assert table[1:] == as_text
    assert [[b[c]["value"] if c in b else "" for c in table[0]] for b in srj["results"]["bindings"]] == as_text
    assert srj["results"]["bindings"][0]["funder"]["type"] == "uri"


@pytest.mark.parametrize("accept, media_type", [
    ("text/csv", "text/csv"), ("application/sparql-results+json", "application/sparql-results+json"),
    ("application/json", "application/json"), ("*/*", "application/json"), (None, "application/json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
    ("text/csv;q=0.5, application/sparql-results+json", "application/sparql-results+json"),
])
def test_accept_chooses_the_format(client, accept, media_type):
    r = client.get("/api/queries/entity-counts", headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.mimetype == media_type
    assert r.headers["Vary"] == "Accept"


def test_unacceptable_formats_and_unknown_names_answer_with_json_errors(client):
    r = client.get("/api/queries/entity-counts", headers={"Accept": "text/html"})
    assert r.status_code == 406 and r.json["error"] == "not-acceptable"
    assert client.get("/api/queries/entity-counts.xml").status_code == 404
    r = client.get("/api/queries/no-such-query")
    assert r.status_code == 404 and r.json["error"] == "not-found"
    assert client.get("/api/queries/entity-counts", headers={"Accept": "x" * 3000}).status_code == 400


@pytest.mark.parametrize("query, parameter, code", [
    ("campaigns-of-organisation", "org", "missing-parameter"),
    ("campaigns-of-organisation?org=org-access-now&role=leader", "role", "bad-parameter"),
    ("campaigns-of-organisation?org=camp-x", "org", "bad-parameter"),
    ("campaigns-of-organisation?org=org-nobody-at-all", "org", "unknown-entity"),
    ("campaigns-of-organisation?org=org-access-now&organisation=x", "organisation", "unknown-parameter"),
    ("campaigns-of-organisation?org=org-access-now&org=org-edri", "org", "bad-parameter"),
    ("campaigns-of-organisation?org=org-access-now&limit=1001", "limit", "bad-parameter"),
    ("campaigns-of-organisation?org=org-access-now&limit=0", "limit", "bad-parameter"),
    ("campaigns-of-organisation?org=org-access-now&offset=-1", "offset", "bad-parameter"),
    ("entity-provenance?entity=org-access-now&limit=5", "limit", "unknown-parameter"),
    ("strategies-ranked?min_adopters=many", "min_adopters", "bad-parameter"),
    ("campaigns-active-on?date=2021-02-30", "date", "bad-parameter"),
    ("search-entities?text=" + "x" * 101, "text", "bad-parameter"),
])
def test_a_bad_parameter_is_a_400_naming_it(client, query, parameter, code):
    for ext in ("", ".csv", ".srj"):
        name, _, args = query.partition("?")
        r = client.get(f"/api/queries/{name}{ext}" + (f"?{args}" if args else ""))
        assert r.status_code == 400 and r.mimetype == "application/json", r.get_data(as_text=True)
        assert r.json["parameter"] == parameter and r.json["error"] == code and parameter in r.json["message"]


@pytest.mark.parametrize("value", ["org-access-now> } UNION { ?s ?p ?o", ID + "org access now", ID + "org-a>b",
                                   "org-access-now\"", "org-access-now\n", "{}", "x" * 10_000])
def test_hostile_entity_values_over_http_are_refused(client, value):
    r = client.get("/api/queries/campaigns-of-organisation?org=" + quote(value, safe=""))
    assert r.status_code == 400 and r.json["parameter"] == "org"


@pytest.mark.parametrize("value", ['" } UNION { ?s ?p ?o } #', "line\nbreak", "'''", "\\", "<x>", "}"])
def test_hostile_text_over_http_is_searched_for_as_text(client, value):
    r = client.get("/api/queries/search-entities?text=" + quote(value, safe=""))
    assert r.status_code == 200 and r.json["results"] == [] and r.json["parameters"] == {"text": value}


def test_next_links_walk_every_page_once_and_appear_only_when_there_is_a_next_page(client):
    first = client.get("/api/queries/most-connected?limit=250").json
    total = first["total"]
    assert total > 500 and first["offset"] == 0 and "prev" not in first
    seen, page, pages = [], first, 0
    while True:
        pages += 1
        seen += [r["entity_id"] for r in page["results"]]
        if "next" not in page:
            break
        page = client.get(path_of(page["next"])).json
        assert page["total"] == total and "prev" in page
    assert pages == -(-total // 250) and len(seen) == len(set(seen)) == total
    assert len(page["results"]) == total - 250 * (pages - 1)


def test_an_exact_last_page_and_an_offset_past_the_end(client):
    total = client.get("/api/queries/entity-counts").json["count"]
    assert total == 10 and "next" not in client.get("/api/queries/entity-counts").json
    r = client.get("/api/queries/campaigns-of-organisation?org=org-access-now&limit=5")
    n = r.json["total"]
    exact = client.get(f"/api/queries/campaigns-of-organisation?org=org-access-now&limit={n}").json
    assert exact["count"] == n and "next" not in exact
    past = client.get("/api/queries/campaigns-of-organisation?org=org-access-now&limit=5&offset=500")
    body = past.json
    assert past.status_code == 200 and body["results"] == [] and body["total"] == n and "next" not in body
    assert f"offset={(n - 1) // 5 * 5}" in body["prev"], "prev leads back to the last page"
    assert 'rel="next"' not in past.headers["Link"] and 'rel="prev"' in past.headers["Link"]


def test_the_link_header_carries_the_paging_links_in_every_format(client):
    for ext in ("", ".csv", ".srj"):
        r = client.get(f"/api/queries/most-connected{ext}?limit=10&offset=10")
        links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="([a-z]+)"', r.headers["Link"]))
        assert "offset=20" in links["next"] and "offset=0" in links["prev"] and "by/4.0" in links["license"]
        assert f"most-connected{ext}?" in links["next"]


def test_answers_have_an_etag_and_a_conditional_get_is_a_304(client):
    url = "/api/queries/campaigns-of-organisation?org=org-access-now"
    r = client.get(url)
    assert r.headers["ETag"] and r.headers["Access-Control-Allow-Origin"] == "*"
    again = client.get(url, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    assert client.get(url + "&role=lead").headers["ETag"] != r.headers["ETag"]


def test_the_openapi_document_declares_every_query_and_its_parameters(openapi):
    assert openapi["openapi"].startswith("3.1")
    for q in QUERIES:
        op = openapi["paths"][f"/api/queries/{q.name}"]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert set(params) == {p.name for p in q.params} | ({"limit", "offset"} if q.paginate else set())
        for p in q.params:
            declared = params[p.name]
            assert declared["required"] is p.required and declared["description"] == p.description
            if p.type == "enum":
                assert declared["schema"]["enum"] == list(p.values)
            if p.type == "integer":
                assert declared["schema"]["type"] == "integer"
            if p.default is not None:
                assert str(declared["schema"]["default"]) == p.default
        assert {"200", "400"} <= set(op["responses"])
        row = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["results"]["items"]
        assert list(row["properties"]) == [c.name for c in q.columns]


def _validator(openapi: dict, pointer: str):
    return jsonschema_rs.validator_for({**openapi, "$ref": pointer})


def _pointer(name: str, media_type: str) -> str:
    return (f"#/paths/~1api~1queries~1{name}/get/responses/200/content/"
            + media_type.replace("/", "~1") + "/schema")


def test_every_example_answer_matches_the_schema_the_document_declares(client, openapi):
    errors = _validator(openapi, "#/components/schemas/Error")
    for q in QUERIES:
        args = q.example_arguments()
        answer = client.get(f"/api/queries/{q.name}", query_string=args)
        _validator(openapi, _pointer(q.name, "application/json")).validate(answer.json)
        srj = client.get(f"/api/queries/{q.name}.srj", query_string=args)
        _validator(openapi, _pointer(q.name, "application/sparql-results+json")).validate(srj.json)
        bad = client.get(f"/api/queries/{q.name}", query_string={**args, "no_such_parameter": "1"})
        assert bad.status_code == 400
        errors.validate(bad.json)
    # and the schema is not a rubber stamp: a wrong row is caught
    wrong = client.get("/api/queries/entity-counts").json
    wrong["results"][0]["entities"] = "ten"
    assert not _validator(openapi, _pointer("entity-counts", "application/json")).is_valid(wrong)
