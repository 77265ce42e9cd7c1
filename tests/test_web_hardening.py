"""The site against hostile input: path traversal, script in the data, hostile URLs and headers.

A small corpus written here puts script payloads in every place an editor could
(name, tags, free-text and unmapped fields, source URLs and notes, the Markdown
body, a `</script>` meant to close the page's JSON-LD, SVG with handlers). Its
pages are opened in a real browser (Playwright driving Debian's chromium) with
the Content-Security-Policy enforced and again with it bypassed — so escaping
alone is shown to stop every payload, and the policy to stop what escaping
would miss. The HTML source is also audited tag by tag. Security headers,
request ids, limits and fuzzed hostile requests (Hypothesis, against the Flask
test client and a real `mg-rdf serve`) complete it: never a 5xx.
"""

from __future__ import annotations

import http.client
import json
import time
import os
import re
import socket
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import CHROMIUM, make_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import start_server

from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris

FLAG = "window.__pwned=1;console.log('PWNED');alert(1)"
NAME = f'<img src=x onerror="{FLAG}">Evil</script><script>{FLAG}</script>'
URL_PAYLOAD = f'<img src=x onerror="{FLAG}">'   # no "/": it stays one path segment, echoed by 404 answers
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
                    "X-Request-Id")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]


def hostile_entity(eid: str, other: str) -> str:
    q = json.dumps
    return f"""---
id: {eid}
type: organization
name: {q(NAME)}
status: active
confidence: high
tags: [{q('<script>' + FLAG + '</script>')}, {q('"><svg onload=' + FLAG + '>')}]
created: 2026-01-01
last_updated: 2026-01-01
founded: 2009
location: {q('<svg><script>' + FLAG + '</script></svg>')}
website: {q('javascript:' + FLAG)}
related_orgs: [{other}]
notes: {q('<iframe src="javascript:' + FLAG + '"></iframe>')}
sources:
  - url: {q('javascript:' + FLAG)}
    last_checked: 2026-01-01
    note: {q('<img src=x onerror=' + FLAG + '>')}
  - url: {q('https://example.org/"><script>' + FLAG + '</script>')}
    last_checked: 2026-01-01
    note: {q('</script><script>' + FLAG + '</script>')}
---

# Hostile

<script>{FLAG}</script> <img src=x onerror="{FLAG}"> <svg onload="{FLAG}"><script>{FLAG}</script></svg>
<a href="javascript:{FLAG}">js link</a> [md link](javascript:{FLAG}) ![img](javascript:{FLAG})
[entity link](&#106;avascript:{FLAG}) [upper](JAVASCRIPT:{FLAG}) [data](data:text/html;base64,PHNjcmlwdD4=)
<details open ontoggle="{FLAG}">x</details> <iframe srcdoc="<script>{FLAG}</script>"></iframe>
<math><mi xlink:href="javascript:{FLAG}">m</mi></math> <form action="javascript:{FLAG}"><button>go</button></form>
<style>body {{ background: red }}</style> <object data="data:text/html,<script>{FLAG}</script>"></object>
[quote](https://example.org/?q="><script>{FLAG}</script>) <https://example.org/"onmouseover="{FLAG}>
See [the other one](../organizations/{other}.md) and *emphasis* `<script>{FLAG}</script>`.
"""


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    corpus = make_corpus(root / "corpus", {
        "entities/organizations/org-xss.md": hostile_entity("org-xss", "org-xss-2"),
        "entities/organizations/org-xss-2.md": hostile_entity("org-xss-2", "org-xss")})
    build(FolderSource(corpus), root / "store", DataIris(), workers=1)
    (root / "store" / "canary-secret.txt").write_text("CANARY-4c1d not to be served\n")
    return root / "store"


@pytest.fixture(scope="module")
def hostile_server(hostile_store, tmp_path_factory):
    server = start_server(hostile_store, log_dir=tmp_path_factory.mktemp("logs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hostile_app(hostile_store):
    from mg_rdf.web import create_app

    return create_app({"STORE_PATH": hostile_store, "TESTING": True})


def tag_slugs(client) -> list[str]:
    html = client.get("/page/org-xss").get_data(as_text=True)
    return re.findall(r'href="/search\?tag=([^"]+)"', html)


def hostile_pages(client) -> list[str]:
    """Every page where the hostile content (or a hostile URL) is echoed."""
    return ["/page/org-xss", "/page/org-xss-2", "/", "/browse", "/browse/organization", "/search?q=Evil",
            *(f"/search?tag={slug}" for slug in tag_slugs(client)),
            "/search?q=" + quote(f"<script>{FLAG}</script>"), "/page/" + quote(URL_PAYLOAD, safe=""),
            "/query?query=" + quote(f"SELECT * WHERE {{ ?s ?p '</textarea><script>{FLAG}</script>' }}"),
            "/sparql/limits", "/api/", "/dumps/"]


# --- path traversal ---------------------------------------------------------

TRAVERSALS = ["..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
              "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%5c..%5cetc%5cpasswd", "%252e%252e%252fetc%252fpasswd",
              "....//....//etc/passwd", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "%2Fetc%2Fpasswd", "..;/..;/etc/passwd",
              "..%2F..%2Fcanary-secret.txt", "..%2Fcanary-secret.txt", "../canary-secret.txt", "..%2F..%2F..%2Fpyproject.toml",
              "..%2F__init__.py", "../hardening.py", "..%2F..%2Fcurrent"]
PREFIXES = ["/id/", "/page/", "/data/", "/static/", "/dumps/", "/ontology/", "/browse/", "/api/queries/", "/sparql/",
            "/.well-known/", "/", "/static/..%2F", "/dumps/..%2F"]
SECRETS = ("root:x:0:0", "CANARY-4c1d", "from __future__", "[project]", "def create_app")


def raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET with the request target sent exactly as given (requests would normalise the dots)."""
    status, body, _ = raw_get_with_headers(url, target, headers)
    return status, body


def raw_get_with_headers(url: str, target: str, headers: dict[str, str] | None = None):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def test_static_files_and_dumps_are_served_so_the_traversal_test_means_something(hostile_server):
    assert raw_get(hostile_server.url, "/static/style.css")[0] == 200
    assert raw_get(hostile_server.url, "/dumps/")[0] == 200


@pytest.mark.parametrize("prefix", PREFIXES)
def test_no_route_serves_a_file_outside_its_folder(hostile_server, prefix):
    for attack in TRAVERSALS:
        for suffix in ("", ".ttl", ".md"):
            target = prefix + attack + suffix
            status, body, headers = raw_get_with_headers(hostile_server.url, target)
            for _ in range(3):   # Werkzeug redirects /a//b to /a/b: follow it, it must end the same way
                if status not in (301, 308):
                    break
                location = headers["Location"]
                assert location.startswith(hostile_server.url + "/"), f"{target} redirects off the site"
                status, body, headers = raw_get_with_headers(hostile_server.url, location[len(hostile_server.url):])
            assert 400 <= status < 500, f"{target} answered {status}"
            leaked = [s for s in SECRETS if s.encode() in body]
            assert not leaked, f"{target} answered {status} with {leaked}"


# --- XSS: the HTML source -----------------------------------------------------

DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "poster", "background"}
FORBIDDEN_TAGS = {"iframe", "object", "embed", "base", "frame", "frameset", "applet", "style", "math"}


class Audit(HTMLParser):
    """Everything in a page that could run script, found by parsing it the way a browser tokenises it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self.json_blocks: list[str] = []
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for name, value in a.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            cleaned = re.sub(r"[\x00-\x20]", "", value).lower()
            favicon = tag == "link" and a.get("rel") == "icon" and cleaned.startswith("data:image/svg+xml")
            if name in URL_ATTRIBUTES and cleaned.startswith(DANGEROUS_SCHEMES) and not favicon:
                self.problems.append(f"<{tag} {name}={value[:60]!r}>")
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            self.problems.append("<meta http-equiv=refresh>")
        if tag == "script":
            if a.get("type") in ("application/ld+json", "application/json"):
                self._script = ""
            elif not a.get("src", "").startswith("/static/"):
                self.problems.append(f"<script {a}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.json_blocks.append(self._script)
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script += data
        else:
            self.text.append(data)


def audit(html: str) -> Audit:
    a = Audit()
    a.feed(html)
    a.close()
    return a


def test_hostile_content_is_escaped_in_the_html_source(hostile_app):
    client = hostile_app.test_client()
    for path in hostile_pages(client):
        r = client.get(path)
        assert r.status_code < 500, f"{path}: {r.status_code}"
        assert r.mimetype == "text/html", f"{path}: {r.mimetype}"
        a = audit(r.get_data(as_text=True))
        assert not a.problems, f"{path}: {a.problems}"
        for block in a.json_blocks:
            json.loads(block)   # a </script> in the data would have cut the block short
    page = audit(client.get("/page/org-xss").get_data(as_text=True))
    text = "".join(page.text)
    assert NAME in text, "the hostile name reached the page, as text"
    assert f"<script>{FLAG}</script>" in text and f"javascript:{FLAG}" in text
    ld = json.loads(page.json_blocks[0])
    assert ld["name"] == NAME, "the JSON-LD carries the name intact"


def test_hostile_text_in_data_documents_is_never_served_as_html(hostile_app):
    client = hostile_app.test_client()
    for path in ("/data/org-xss.md", "/data/org-xss.ttl", "/data/org-xss.jsonld", "/data/" + quote(URL_PAYLOAD, safe=""),
                 "/api/queries/search-entities?text=Evil", "/sparql?query=" + quote("SELECT ?n WHERE { ?e mg:name ?n }")):
        r = client.get(path)
        assert r.mimetype != "text/html" and r.headers["X-Content-Type-Options"] == "nosniff", path


# --- XSS: in the browser --------------------------------------------------------

WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("MG_RDF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"needs {CHROMIUM} for browser tests")
        pytest.skip(f"needs {CHROMIUM} (apt-get install -y chromium) for browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.parametrize("csp", ["enforced", "bypassed"])
def test_no_hostile_payload_runs_in_the_browser(browser, hostile_server, hostile_app, csp):
    context = browser.new_context(bypass_csp=csp == "bypassed")
    page = context.new_page()
    dialogs, logged = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: logged.append(m.text))
    page.add_init_script(WATCH)
    try:
        for path in hostile_pages(hostile_app.test_client()):
            page.goto(hostile_server.url + path)
            page.wait_for_load_state("load")
            if path.startswith("/page/org-xss"):
                for selector in ("h1", "svg a.node circle", ".prose", "#sources li"):   # handlers waiting for a pointer
                    page.locator(selector).first.hover(force=True)
            assert page.evaluate("window.__pwned") is None, f"a payload ran on {path}"
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => String(e.href.baseVal ?? e.href).trim().toLowerCase())")
            assert not [h for h in hrefs if h.startswith(DANGEROUS_SCHEMES)], f"a script link on {path}"
            assert page.evaluate("window.__violations") == [], \
                f"{path} made the CSP refuse something: a page and its policy disagree"
        page.goto(hostile_server.url + "/page/org-xss")
        assert NAME in page.inner_text("h1"), "the payload reached the page, shown as text"
        # Results rendered by the query page's own JavaScript, as a table and as a graph.
        for query in ("SELECT ?name ?note WHERE { ?e mg:name ?name ; mg:source/mg:note ?note }",
                      "CONSTRUCT { ?e mg:name ?name } WHERE { ?e mg:name ?name }"):
            page.goto(hostile_server.url + "/query?query=" + quote(query))
            page.click("#run-query")
            page.locator("#query-results").get_by_text("Evil").first.wait_for()   # (no eval: the CSP forbids it)
            assert page.evaluate("window.__pwned") is None, f"a payload ran in the results of {query}"
        assert not dialogs and "PWNED" not in " ".join(logged), f"dialogs {dialogs}, console {logged}"
        # The detector works: script injected now runs only where the policy is bypassed.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.__probe=1\">')")
        page.wait_for_timeout(300)
        if csp == "bypassed":
            assert page.evaluate("window.__probe") == 1
        else:
            assert page.evaluate("window.__probe") is None
            assert "script-src-attr" in page.evaluate("window.__violations")
    finally:
        context.close()


# --- headers, request ids, limits --------------------------------------------

ROUTE_VALUES = {"entities.document": {"name": "org-xss.ttl"}, "api.run_query": {"name": "entity-counts"},
                "dumps.download": {"filename": "movement-graph.nt.gz"}, "pages.static": {"filename": "style.css"},
                "docs.ontology": {"ext": "ttl"}, "docs.shapes": {"ext": "ttl"}, "docs.ontology_version": {"version": "x"},
                "pages.browse_type": {"type_name": "organization"}}


def every_route(app) -> list[tuple[str, str]]:
    """(method, URL) for every rule the app has, routes added later included."""
    with app.test_request_context():
        from flask import url_for

        out = []
        for rule in app.url_map.iter_rules():
            values = {arg: "org-xss" for arg in rule.arguments} | ROUTE_VALUES.get(rule.endpoint, {})
            values = {k: v for k, v in values.items() if k in rule.arguments}
            url = url_for(rule.endpoint, **values)
            out += [(m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
        return out


def assert_secured(r, what: str) -> None:
    missing = [h for h in SECURITY_HEADERS if h not in r.headers]
    assert not missing, f"{what} ({r.status_code}) lacks {missing}"
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in \
        csp.split("script-src")[1].split(";")[0], csp


def test_every_route_and_error_answer_carries_the_security_headers(hostile_app):
    client = hostile_app.test_client()
    routes = every_route(hostile_app)
    assert len(routes) >= 20
    for method, url in routes:
        r = client.open(url, method=method, data={"query": "ASK {}"} if method == "POST" else None)
        assert r.status_code < 500, f"{method} {url}: {r.status_code}"
        assert_secured(r, f"{method} {url}")
    for method, url, kw, status in [
            ("GET", "/nowhere", {}, 404), ("PUT", "/", {}, 405),
            ("POST", "/sparql", {"data": b"x" * (2 << 20), "content_type": "application/sparql-query"}, 413),
            ("GET", "/search?q=" + "a" * 40_000, {}, 414), ("GET", "/", {"headers": {"Referer": "c" * 9000}}, 431),
            ("GET", "/search?q=%00", {}, 400)]:
        r = client.open(url, method=method, **kw)
        assert r.status_code == status, f"{method} {url[:40]}: {r.status_code}"
        assert_secured(r, f"{method} {url[:40]}")


def test_a_request_id_is_made_or_taken_from_the_client(hostile_app):
    client = hostile_app.test_client()
    a, b = client.get("/healthz").headers["X-Request-Id"], client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", a) and a != b
    assert client.get("/", headers={"X-Request-Id": "trace-42.a:b"}).headers["X-Request-Id"] == "trace-42.a:b"
    for bad in ("has space", "x" * 200, "é-unicode", "<script>", ""):
        got = client.get("/", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{32}", got)


def test_access_log_has_one_json_line_per_request_with_the_query_time(hostile_server):
    ids = {"page": "t-page-1", "query": "t-query-1", "stopped": "t-stopped-1", "missing": "t-missing-1"}
    url = hostile_server.url
    requests.get(url + "/page/org-xss", headers={"X-Request-Id": ids["page"]}, timeout=30)
    requests.get(url + "/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 3"},
                 headers={"X-Request-Id": ids["query"]}, timeout=30)
    r = requests.get(url + "/sparql", params={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
                                              "timeout": "0.5"}, headers={"X-Request-Id": ids["stopped"]}, timeout=30)
    assert r.status_code == 503
    requests.get(url + "/nowhere", headers={"X-Request-Id": ids["missing"]}, timeout=30)
    lines: dict = {}
    deadline = time.monotonic() + 10   # a line is written when the response body closes, just after it is sent
    while time.monotonic() < deadline and not set(ids.values()) <= lines.keys():
        time.sleep(0.05)
        for line in hostile_server.log.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                lines[entry["request_id"]] = entry
    for key, rid in ids.items():
        assert rid in lines, f"no access-log line for the {key} request"
        e = lines[rid]
        assert {"time", "method", "path", "status", "bytes", "duration_ms"} <= set(e), e
    assert lines[ids["page"]]["status"] == 200 and lines[ids["page"]]["bytes"] > 1000
    assert lines[ids["page"]]["path"] == "/page/org-xss"
    assert lines[ids["query"]]["status"] == 200 and lines[ids["query"]]["query_ms"] >= 0
    assert lines[ids["stopped"]]["status"] == 503 and lines[ids["stopped"]]["query_time_limit_s"] == 0.5
    assert lines[ids["missing"]]["status"] == 404


def test_request_limits_on_a_real_server(hostile_server):
    url = hostile_server.url
    big = b"ASK {}" + b" " * (2 << 20)
    r = requests.post(url + "/sparql", data=big, headers={"Content-Type": "application/sparql-query"}, timeout=30)
    assert r.status_code == 413
    r = requests.post(url + "/sparql", data={"query": "ASK {}" + " " * (2 << 20)}, timeout=30)
    assert r.status_code == 413
    r = requests.post(url + "/sparql", data=iter([b"ASK {}", b" " * (2 << 20)]),   # chunked: no length up front
                      headers={"Content-Type": "application/sparql-query"}, timeout=30)
    assert r.status_code == 413
    assert requests.post(url + "/sparql", data=b"ASK {}", headers={"Content-Type": "application/sparql-query"},
                         timeout=30).status_code == 200, "a small POST still works"
    assert raw_get(url, "/search?q=" + "a" * 40_000)[0] == 414
    assert raw_get(url, "/search?q=" + "a" * 100_000)[0] == 414   # the app refuses it (the server allows 1 MiB)
    for accept in ("text/html;q=0.5," * 200, "x" * 9000, "a/b;" * 30_000):
        status, _ = raw_get(url, "/id/org-xss", {"Accept": accept})
        assert 400 <= status < 500, f"Accept of {len(accept)} bytes: {status}"
    assert raw_get(url, "/id/%00")[0] == 400 and raw_get(url, "/search?q=a%00b")[0] == 400


# --- fuzzing ------------------------------------------------------------------

ROUTE_HEADS = ["/", "/id/", "/page/", "/data/", "/static/", "/dumps/", "/ontology", "/ontology/", "/shapes.",
               "/browse/", "/search", "/query", "/sparql", "/sparql/limits", "/api/queries/", "/api/", "/.well-known/void",
               "/healthz", "/readyz", "/page/org-xss", "/id/org-xss", "/data/org-xss.ttl", "/data/org-xss",
               "/api/queries/search-entities", "/api/queries/entity-counts", "/browse/organization", "/dumps/"]
NASTY = st.sampled_from(["%", "%2", "%zz", "%ff", "%fe%ff", "%00", "%c0%ae", "..", "/", "%2f", "%5c", "~", "+", "&",
                         "=", "?", ";", "%0d%0a", "%u2215", "\\", "%e2%80%ae", "%", "ttl", "org-xss", "é", "\u202e"])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
segment = st.lists(st.one_of(NASTY, TEXT.map(lambda t: quote(t, safe="")), TEXT), max_size=6).map("".join)
query_string = st.lists(st.tuples(st.sampled_from(["q", "query", "format", "tag", "page", "timeout", "text", "limit",
                                                   "default-graph-uri", "entity", "offset", "x"]), segment),
                        max_size=4).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))
header_value = st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
                         st.sampled_from(["*/*;q=nan", "text/html;q=2", ";;;,,,", "text/turtle;q=1e999", "a/b;c=\"",
                                          "*/*;q=0", "bytes=99999999-", "W/\"x\", *", "Thu, 99 Nov 2026 99:99:99 GMT",
                                          "multipart/form-data; boundary=", "application/sparql-query; charset=latin9"]))
headers = st.dictionaries(st.sampled_from(["Accept", "Accept-Language", "Accept-Encoding", "If-None-Match",
                                           "If-Modified-Since", "Range", "Content-Type", "Origin", "X-Request-Id",
                                           "Access-Control-Request-Headers", "Cookie", "Referer"]),
                          header_value, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "PUT"]),
       head=st.sampled_from(ROUTE_HEADS), tail=st.one_of(st.just(""), segment), query=query_string, headers=headers,
       body=st.binary(max_size=200))
def test_fuzzed_requests_never_get_a_5xx_from_the_app(hostile_app, method, head, tail, query, headers, body):
    client = hostile_app.test_client()
    url = "/" + (head + tail).lstrip("/") + ("?" + query if query else "")   # "//x" would be a host to the client
    r = client.open(url, method=method, headers=headers, data=body if method in ("POST", "PUT") else None)
    assert r.status_code < 500, f"{method} {url!r} {headers}: {r.status_code} {r.get_data()[:300]!r}"
    assert "Content-Security-Policy" in r.headers and "X-Request-Id" in r.headers


raw_target = st.lists(st.one_of(NASTY.map(str.encode), st.binary(max_size=12).map(
    lambda b: bytes(c for c in b if c not in b"\r\n ")), st.sampled_from([b"?", b"&", b"=", b"#"])), max_size=8)
raw_header = st.binary(max_size=80).map(lambda b: bytes(c for c in b if c not in b"\r\n"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(head=st.sampled_from(ROUTE_HEADS).map(str.encode), tail=raw_target,
       header=st.sampled_from([b"Accept", b"If-None-Match", b"Content-Type", b"X-Request-Id", b"Range", b"X-Any"]),
       value=raw_header, huge_accept=st.sampled_from([0, 0, 0, 3000, 70_000]))
def test_raw_hostile_requests_never_get_a_5xx_from_a_real_server(hostile_server, head, tail, header, value,
                                                                  huge_accept):
    host, port = hostile_server.url.removeprefix("http://").split(":")
    target = head + b"".join(tail)
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", header + b": " + value, b"Connection: close"]
    if huge_accept:
        lines.append(b"Accept: " + b"text/html;q=0.1," * (huge_accept // 16))
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert re.fullmatch(rb"HTTP/1\.[01] [1-4]\d\d .*", status), f"{target!r} {header!r}: {value!r} -> {status!r}"
