"""The site in a real browser (Playwright driving Debian's chromium) on the real corpus.

A person opens the #BanBS campaign, reads its connections and sources, follows a
link to a neighbour, then runs example queries on the query page. Expectations
come from the corpus YAML and from the SPARQL endpoint itself, not from the
pages under test. Every test also checks that the page logged no console error
and made no request off 127.0.0.1 (every page must work with no internet).
Screenshots land in test-artifacts/ (gitignored).

Without /usr/bin/chromium the tests skip, unless MG_RDF_REQUIRE_BROWSER=1 (CI),
where that is a failure.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml

from conftest import CHROMIUM, CORPUS, ROOT

ARTIFACTS = ROOT / "test-artifacts"
BANBS = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"
ACCESS_NOW = "org-access-now"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]
MONTHS = ("January February March April May June July August September October November December").split()


def frontmatter(entity_path: str) -> dict:
    """The YAML header of a corpus entity file, read here independently of mg-rdf."""
    text = (CORPUS / "entities" / entity_path).read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---", 2)[1])


def spaced(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"needs {CHROMIUM} (apt-get install -y chromium) for browser tests"
        if os.environ.get("MG_RDF_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """A browser page with what it logged and requested, for checks at the end of a test."""
    page: object
    name: str
    console_errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)      # "404 URL" for every 4xx/5xx answer

    def screenshot(self, step: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"browser-{self.name}-{step}.png"), full_page=full_page)

    def assert_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.console_errors if not any(a in e for a in allowed_errors)]
        assert not errors, f"console errors on {self.page.url}: {errors}; failed requests: {self.failed}"
        off_machine = [u for u in self.requested
                       if urlparse(u).scheme not in ("data", "blob", "about") and urlparse(u).hostname != "127.0.0.1"]
        assert not off_machine, f"requests that leave 127.0.0.1 (the site must work offline): {off_machine}"


@pytest.fixture()
def visit(browser, head_server, request):
    context = browser.new_context(base_url=head_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    v = Visit(page, request.node.name.removeprefix("test_"))
    page.on("console", lambda m: v.console_errors.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: v.console_errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: v.requested.append(r.url))
    page.on("response", lambda r: v.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.set_default_timeout(15_000)
    yield v
    try:
        v.screenshot("last", full_page=False)   # what the page showed when the test ended, pass or fail
    except Exception as e:  # a failed screenshot must not hide the test's own outcome
        print(f"no screenshot: {e}")
    finally:
        context.close()


# --- the entity pages ----------------------------------------------------------

def test_campaign_page_shows_declared_connections_and_sources(visit: Visit):
    fm = frontmatter(f"campaigns/{BANBS}.md")
    declared = sum(len(fm.get(k) or []) for k in ("lead_orgs", "participating_orgs", "events", "strategies"))
    page = visit.page
    response = page.goto(f"/id/{BANBS}")
    assert response is not None and response.ok, f"/id/{BANBS} answered {response and response.status}"
    assert spaced(page.locator("h1").first.inner_text()) == spaced(fm["name"])
    text = spaced(page.locator("body").inner_text())
    assert re.search(rf"\b{declared}\s+declared\s+connections?\b", text, re.I), \
        f"the page should say '{declared} declared connections' (lead_orgs + participating_orgs + events + strategies)"

    assert page.get_by_role("heading", name=re.compile(r"^\s*Sources\s*$", re.I)).count() >= 1, "no 'Sources' heading"
    for source in fm["sources"]:
        assert spaced(source["note"]) in text, f"source note missing: {source['note'][:80]}…"
        assert page.locator(f'a[href="{source["url"]}"]').count() >= 1, f"no link to the source {source['url']}"
    checked = [s["last_checked"] for s in fm["sources"] if s.get("last_checked")]
    for day in set(checked):
        forms = [day.isoformat(), f"{day.day} {MONTHS[day.month - 1]} {day.year}",
                 f"{MONTHS[day.month - 1]} {day.day}, {day.year}"]
        found = len(re.findall(rf"Checked\W{{0,3}}(?:{'|'.join(map(re.escape, forms))})", text, re.I))
        assert found >= checked.count(day), f"expected 'Checked {day}' for {checked.count(day)} sources, saw {found}"
    visit.screenshot("campaign")
    visit.assert_clean()


def test_link_to_a_neighbour_opens_its_page(visit: Visit):
    org = frontmatter(f"organizations/{ACCESS_NOW}.md")
    page = visit.page
    page.goto(f"/id/{BANBS}")
    # /id/{id} or the page it redirects to: the link's route is the page's business, its target is not.
    links = page.locator(f'a[href$="/{ACCESS_NOW}"]')
    assert links.count() >= 1, f"the campaign page has no link to {ACCESS_NOW}'s page"
    named = links.filter(has_text=org["name"])
    assert named.count() >= 1, f"links to {ACCESS_NOW} should show its name ({org['name']!r}), not its id"
    # Follow a link in the text (connections, body), as a reader would; the map is tested by its owner.
    in_text = [a for a in named.all() if a.evaluate("a => !a.closest('svg')")]
    assert in_text, f"the only links to {ACCESS_NOW} are in the neighbourhood picture"
    with page.expect_navigation():
        in_text[0].click()
    assert urlparse(page.url).hostname == "127.0.0.1" and page.url.endswith(ACCESS_NOW), page.url
    assert spaced(page.locator("h1").first.inner_text()) == spaced(org["name"])
    visit.screenshot("neighbour")
    visit.assert_clean()


# --- the query page ----------------------------------------------------------

def wait_for_answer(page) -> str:
    """Wait until the query page reports a finished run; return its status line."""
    page.wait_for_function("""() => {
        const s = document.querySelector('#query-status').textContent;
        return /\\b(rows?|triples?|ASK|Failed)\\b/.test(s) && !document.querySelector('#query-results[aria-busy]');
    }""")
    return page.locator("#query-status").inner_text()


def endpoint_rows(server_url: str, query: str) -> tuple[int, requests.Response]:
    """What /sparql itself answers for ``query``: the number of rows (or triples) and the response."""
    r = requests.post(server_url + "/sparql", data=query.encode(), timeout=30,
                      headers={"Content-Type": "application/sparql-query",
                               "Accept": "application/sparql-results+json, application/n-triples;q=0.9"})
    r.raise_for_status()
    if r.headers["Content-Type"].startswith("application/sparql-results+json"):
        return len(r.json()["results"]["bindings"]), r
    return sum(1 for line in r.text.splitlines() if line.strip()), r


def test_example_query_runs_and_shows_result_rows(visit: Visit, head_server):
    page = visit.page
    page.goto("/query")
    examples = page.locator("a.query-example")
    assert examples.count() >= 1, "the query page offers no example queries"
    examples.first.click()
    status = wait_for_answer(page)
    assert "Failed" not in status, f"the first example failed: {page.locator('#query-error').inner_text()}"
    shown = page.locator("#query-results table tbody tr").count()
    text = page.locator("#query-text").input_value()
    expected, _ = endpoint_rows(head_server.url, text)
    assert expected > 0, f"the first example returns nothing on the real corpus:\n{text}"
    assert shown == expected, f"table shows {shown} rows, /sparql answers {expected}"
    assert re.search(r"\d+ ms", status), f"no run time in the status line: {status!r}"
    # The highlighted copy behind the textarea shows the same text, coloured by token.
    assert page.locator(".sparql-highlight").inner_text().rstrip() == text.rstrip()
    assert "SELECT" in page.locator(".sparql-highlight .sq-kw").all_inner_texts()
    assert page.locator(".sparql-highlight .sq-var").count() > 0
    visit.screenshot("example")
    visit.assert_clean()


def test_prefilled_query_links_our_iris_and_offers_every_download(visit: Visit, head_server):
    fm = frontmatter(f"campaigns/{BANBS}.md")
    query = f"SELECT ?org WHERE {{ <https://w3id.org/movement-graph/id/{BANBS}> mg:participatingOrganization ?org }}"
    page = visit.page
    page.goto("/query?" + requests.compat.urlencode({"query": query}))
    assert page.locator("#query-text").input_value() == query
    page.keyboard.press("Control+Enter")
    wait_for_answer(page)
    hrefs = page.locator("#query-results td a").evaluate_all("links => links.map(a => a.href)")
    expected = {f"{head_server.url}/id/{org}" for org in fm["participating_orgs"]}
    assert set(hrefs) == expected, "entity IRIs should link to this server's /id/ pages"
    downloads = page.locator("#query-downloads a:visible")
    formats = {}
    for href in downloads.evaluate_all("links => links.map(a => a.href)"):
        params = parse_qs(urlparse(href).query)
        assert params["query"] == [query]
        formats[params["format"][0]] = href
    assert set(formats) == {"json", "xml", "csv", "tsv"}
    orgs = len(set(fm["participating_orgs"]))
    answers = {fmt: requests.get(href, timeout=30) for fmt, href in formats.items()}
    for fmt, r in answers.items():
        assert r.status_code == 200, f"download {fmt}: HTTP {r.status_code} {r.text[:200]}"
    assert len(answers["json"].json()["results"]["bindings"]) == orgs
    assert answers["xml"].text.count("<result>") == orgs
    assert len(answers["csv"].text.strip().splitlines()) == orgs + 1     # header line + one per row
    assert len(answers["tsv"].text.strip().splitlines()) == orgs + 1
    visit.assert_clean()


def test_construct_answers_show_as_triples_and_literals_stay_text(visit: Visit, head_server):
    fm = frontmatter(f"campaigns/{BANBS}.md")
    page = visit.page
    page.goto("/query")
    construct = (f"CONSTRUCT {{ ?c mg:participatingOrganization ?o }} WHERE {{ "
                 f"BIND(<https://w3id.org/movement-graph/id/{BANBS}> AS ?c) ?c mg:participatingOrganization ?o }}")
    page.locator("#query-text").fill(construct)
    page.locator("#run-query").click()
    wait_for_answer(page)
    headers = page.locator("#query-results th").all_inner_texts()
    assert [h.strip() for h in headers] == ["subject", "predicate", "object"]
    assert page.locator("#query-results tbody tr").count() == len(set(fm["participating_orgs"]))
    assert page.locator("#query-downloads a:visible").evaluate_all(
        "links => links.map(a => new URL(a.href).searchParams.get('format'))") == ["ttl", "nt", "jsonld", "rdf"]

    markup = '<b>bold</b><img src=x onerror="window.__injected=1"><script>window.__injected=1</script>'
    page.locator("#query-text").fill(f"SELECT ?text WHERE {{ BIND('{markup}' AS ?text) }}")
    page.locator("#run-query").click()
    wait_for_answer(page)
    assert page.locator("#query-results td").first.inner_text() == markup
    assert page.locator("#query-results b, #query-results img, #query-results script").count() == 0
    assert page.evaluate("window.__injected") is None
    visit.assert_clean()


def test_failing_query_shows_the_endpoint_message(visit: Visit, head_server):
    bad = "SELECT ?x WHERE { ?x mg:name }"
    r = requests.post(head_server.url + "/sparql", data=bad.encode(),
                      headers={"Content-Type": "application/sparql-query"}, timeout=30)
    assert r.status_code == 400, f"/sparql should answer 400 to a syntax error, got {r.status_code}"
    page = visit.page
    page.goto("/query")
    page.locator("#query-text").fill(bad)
    page.locator("#query-text").press("Control+Enter")
    status = wait_for_answer(page)
    assert "400" in status
    error = page.locator("#query-error")
    assert error.is_visible()
    assert spaced(r.text)[:60] in spaced(error.inner_text())
    visit.screenshot("error")
    # Chromium logs every 4xx fetch as a console error; that one is the point of this test.
    visit.assert_clean(allowed_errors=("status of 400",))


def test_truncation_notice_when_results_are_capped(visit: Visit, head_server):
    query = "SELECT ?s ?p ?o WHERE { ?s ?p ?o }"
    _, r = endpoint_rows(head_server.url, query)
    assert r.headers.get("MG-RDF-Truncated") == "true", "the whole graph should exceed the result cap"
    page = visit.page
    page.goto("/query?" + requests.compat.urlencode({"query": query}))
    page.locator("#run-query").click()
    wait_for_answer(page)
    assert page.locator("#query-truncated").is_visible()
    visit.assert_clean()


def test_without_javascript_the_form_still_downloads_results(browser, head_server):
    context = browser.new_context(base_url=head_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/query?query=ASK%20%7B%7D")
        assert page.locator("textarea[name=query]").input_value() == "ASK {}"
        form = page.locator("form#query-form")
        assert form.get_attribute("method") == "get" and form.get_attribute("action").endswith("/sparql")
        buttons = page.locator("form#query-form button[name=format]:visible")
        assert set(buttons.evaluate_all("bs => bs.map(b => b.value)")) == {
            "json", "xml", "csv", "tsv", "ttl", "nt", "jsonld", "rdf"}
        with page.expect_response(lambda resp: "/sparql?" in resp.url) as answer:
            page.locator("button[name=format][value=json]").click()
        assert answer.value.status == 200 and answer.value.json() == {"head": {}, "boolean": True}
    finally:
        context.close()
