"""The plain-request path of /sparql (sparql.PlainQueries) answers exactly what the Flask
endpoint answers, and is taken for the requests it is meant for."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from mg_rdf.web import create_app, sparql

SELECT = "SELECT ?e ?n WHERE { ?e mg:name ?n } ORDER BY ?e"
ASK = "ASK { ?c a mg:Campaign }"
CONSTRUCT = "CONSTRUCT { ?e mg:name ?n } WHERE { ?e mg:name ?n }"
DESCRIBE = "DESCRIBE ?c WHERE { ?c a mg:Campaign } LIMIT 1"
ACCEPTS = ["application/sparql-results+json", "application/sparql-results+xml", "text/csv",
           "text/tab-separated-values", "text/turtle", "application/n-triples", "application/ld+json",
           "application/rdf+xml", "*/*", None, "text/turtle;q=0.5, application/n-triples",
           "application/json", "text/html"]
VARYING = {"x-request-id", "server-timing", "date"}


def requests_to_compare():
    for query in (SELECT, ASK, CONSTRUCT, DESCRIBE):
        for accept in ACCEPTS:
            for how in ("post", "get"):
                yield query, accept, how


def send(client, query: str, accept: str | None, how: str, extra: dict | None = None):
    headers = {**({"Accept": accept} if accept else {}), **(extra or {})}
    if how == "post":
        return client.post("/sparql", data=query.encode(), headers={**headers, "Content-Type": "application/sparql-query"})
    return client.get("/sparql?query=" + quote_plus(query), headers=headers)


def shape(r) -> tuple:
    headers = sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in VARYING)
    return r.status_code, headers, r.data


@pytest.fixture()
def apps(sample_build):
    sparql._negotiated.clear()   # this process's memos: each test starts with none negotiated
    sparql._links.clear()
    sparql._decoded.clear()
    store = sample_build.store_path.parent.parent
    made = {}
    for plain in (False, True):
        app = create_app({"STORE_PATH": store, "TESTING": True, "SPARQL_PLAIN_PATH": plain, "MAX_RESULTS": 3})
        made[plain] = app
    return made


def counting_endpoint(app) -> list[str]:
    """Count the requests the Flask endpoint itself answers in ``app``."""
    calls: list[str] = []
    view = app.view_functions["sparql.endpoint"]

    def counted():
        calls.append("flask")
        return view()
    app.view_functions["sparql.endpoint"] = counted
    return calls


def test_plain_requests_get_the_answers_of_the_endpoint(apps):
    flask_only, plain = apps[False].test_client(), apps[True].test_client()
    calls = counting_endpoint(apps[True])
    compared = 0
    for query, accept, how in requests_to_compare():
        for cache in ({"Cache-Control": "no-cache"}, {}):   # evaluated, then from the answer cache
            expected = shape(send(flask_only, query, accept, how, cache))
            before = len(calls)
            first = shape(send(plain, query, accept, how, cache))
            second = shape(send(plain, query, accept, how, cache))
            assert first == expected, (query, accept, how, cache)
            assert second == expected, (query, accept, how, cache)
            if expected[0] == 200:
                assert len(calls) - before <= 1, "the second request should not reach Flask"
            compared += 1
    assert compared == 4 * len(ACCEPTS) * 2 * 2
    assert any(s == 406 for s in [shape(send(flask_only, SELECT, "text/turtle", "post"))[0]])


def test_the_plain_path_is_taken_and_signals_truncation_like_the_endpoint(apps):
    plain = apps[True].test_client()
    calls = counting_endpoint(apps[True])
    send(plain, SELECT, "application/sparql-results+json", "post")   # Flask negotiates and remembers
    assert calls == ["flask"]
    r = send(plain, SELECT, "application/sparql-results+json", "post", {"Cache-Control": "no-cache"})
    assert calls == ["flask"], "a plain request went through Flask"
    assert r.status_code == 200
    assert r.headers["MG-RDF-Truncated"] == "true" and r.headers["MG-RDF-Result-Limit"] == "3"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["X-Content-Type-Options"] == "nosniff"   # the request guard still wraps it
    assert len(r.json["results"]["bindings"]) == 3


@pytest.mark.parametrize("case", ["syntax error", "update", "conditional", "form", "two parameters", "pin"])
def test_other_requests_go_to_the_endpoint(apps, case):
    flask_only, plain = apps[False].test_client(), apps[True].test_client()
    calls = counting_endpoint(apps[True])
    accept = "application/sparql-results+json"
    send(plain, SELECT, accept, "post")   # negotiation remembered
    send(flask_only, SELECT, accept, "post")   # and both apps hold that answer in their cache
    calls.clear()
    if case == "syntax error":
        r, e = send(plain, "SELECT ?x WHERE {", accept, "post"), send(flask_only, "SELECT ?x WHERE {", accept, "post")
    elif case == "update":
        r, e = (send(plain, "INSERT DATA { <a:b> <a:c> <a:d> }", accept, "post"),
                send(flask_only, "INSERT DATA { <a:b> <a:c> <a:d> }", accept, "post"))
    elif case == "conditional":
        etag = send(plain, SELECT, accept, "get").headers["ETag"]
        calls.clear()
        r = send(plain, SELECT, accept, "get", {"If-None-Match": etag})
        e = send(flask_only, SELECT, accept, "get", {"If-None-Match": etag})
        assert r.status_code == 304
    elif case == "form":
        r = plain.post("/sparql", data={"query": SELECT}, headers={"Accept": accept})
        e = flask_only.post("/sparql", data={"query": SELECT}, headers={"Accept": accept})
    elif case == "two parameters":
        r = plain.get("/sparql?query=" + quote_plus(SELECT) + "&format=json")
        e = flask_only.get("/sparql?query=" + quote_plus(SELECT) + "&format=json")
    else:
        r = plain.get("/sparql?query=" + quote_plus(SELECT) + "&pin=nope")
        e = flask_only.get("/sparql?query=" + quote_plus(SELECT) + "&pin=nope")
    assert calls, "the endpoint should have answered"
    assert shape(r) == shape(e)


def test_a_query_string_sent_again_is_decoded_once_and_the_memo_stays_bounded(apps, monkeypatch):
    client = apps[True].test_client()
    first = send(client, SELECT, "text/csv", "get")
    assert sparql._decoded == {"query=" + quote_plus(SELECT): SELECT}
    again = send(client, SELECT, "text/csv", "get")
    assert again.status_code == 200 and again.data == first.data
    other = SELECT.replace("?n", "?name")
    monkeypatch.setattr(sparql, "DECODED_KEPT", 1)
    assert send(client, other, "text/csv", "get").data == first.data.replace(b"e,n", b"e,name")
    assert list(sparql._decoded.values()) == [other], "full: forgotten at once, then the new one kept"
    monkeypatch.setattr(sparql, "DECODED_LONGEST", 10)
    sparql._decoded.clear()
    assert send(client, ASK, None, "get").status_code == 200 and not sparql._decoded, "too long to keep"
