"""Dereferencing /id/{id}, the data documents and the entity page.

Expected values come from the Markdown files themselves (YAML frontmatter read
here with PyYAML), not from the store the pages read, so a mapping, a query or
a template bug shows as a difference.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import statistics
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import rdflib
import requests
import yaml
from markupsafe import escape
from pyoxigraph import NamedNode, RdfFormat, Store, parse

from conftest import ROOT, make_corpus
from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris
from mg_rdf.web import create_app
from mg_rdf.web.entities import document_query
from mg_rdf.web.markdown import render, sanitise
from mg_rdf.web.neighbourhood import layout
from mg_rdf.web.entity_view import EntityRef

BASE = "https://w3id.org/movement-graph/"
BANBS = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"
SAMPLE_BANBS = ROOT / "entities" / "campaigns" / f"{BANBS}.md"
FORMATS = {"ttl": ("text/turtle", RdfFormat.TURTLE, "turtle"),
           "jsonld": ("application/ld+json", RdfFormat.JSON_LD, "json-ld"),
           "nt": ("application/n-triples", RdfFormat.N_TRIPLES, "nt"),
           "rdf": ("application/rdf+xml", RdfFormat.RDF_XML, "xml")}
SECTIONS = ["in-focus", "connections", "background", "sources", "provenance"]


def frontmatter(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8").split("---", 2)[1], Loader=yaml.CSafeLoader)


def declared_from_yaml(data: dict) -> int:
    return sum(len(data.get(k) or []) for k in ("lead_orgs", "participating_orgs", "events", "strategies"))


def triples(data: bytes, fmt: RdfFormat) -> set:
    """The triples of an RDF document (pyoxigraph parses into default-graph quads)."""
    return {q.triple for q in parse(data, format=fmt, base_iri=BASE)}


def page_text(body: str) -> str:
    """What a reader sees: tags dropped, entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def tags_of(body: str) -> Tags:
    t = Tags()
    t.feed(body)
    return t


@pytest.fixture()
def md_app(sample_build):
    """The sample app (its build keeps the entities' Markdown sources beside the store)."""
    return create_app({"STORE_PATH": sample_build.store_path.parent.parent, "TESTING": True})


@pytest.fixture(scope="module")
def head_app(head_build):
    return create_app({"STORE_PATH": head_build.store_path.parent.parent, "TESTING": True})


# --- /id/{id}: 303 by Accept ---------------------------------------------------------

@pytest.mark.parametrize("accept, location", [
    ("text/html", f"/page/{BANBS}"),
    ("application/xhtml+xml", f"/page/{BANBS}"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", f"/page/{BANBS}"),
    ("*/*", f"/page/{BANBS}"),
    ("", f"/page/{BANBS}"),
    ("text/turtle", f"/data/{BANBS}.ttl"),
    ("application/ld+json", f"/data/{BANBS}.jsonld"),
    ("application/n-triples", f"/data/{BANBS}.nt"),
    ("application/rdf+xml", f"/data/{BANBS}.rdf"),
    ("text/markdown", f"/data/{BANBS}.md"),
    ("text/turtle;q=0.4, application/ld+json;q=0.9", f"/data/{BANBS}.jsonld"),
    ("text/html;q=0.1, application/rdf+xml", f"/data/{BANBS}.rdf"),
    ("image/png, text/turtle;q=0.2", f"/data/{BANBS}.ttl"),
])
def test_entity_iri_answers_303_to_the_representation_accept_asks_for(md_app, accept, location):
    r = md_app.test_client().get(f"/id/{BANBS}", headers={"Accept": accept} if accept else {})
    assert r.status_code == 303, r.data
    assert r.headers["Location"].endswith(location), f"Accept {accept!r} went to {r.headers['Location']}"
    assert "Accept" in r.headers["Vary"]
    for ext, (media, _, _) in FORMATS.items():
        assert f'</data/{BANBS}.{ext}>; rel="alternate"; type="{media}"' in r.headers["Link"]


def test_accept_nothing_we_have_is_406(md_app):
    r = md_app.test_client().get(f"/id/{BANBS}", headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert "text/turtle" in r.get_data(as_text=True), "a 406 lists what is available"


def test_markdown_is_not_offered_when_the_build_kept_no_source(tmp_path):
    corpus = make_corpus(tmp_path / "c", {f"entities/campaigns/{BANBS}.md": SAMPLE_BANBS.read_text()})
    build(FolderSource(corpus), tmp_path / "s", DataIris(), workers=1)
    shutil.rmtree(tmp_path / "s" / "sources")
    client = create_app({"STORE_PATH": tmp_path / "s", "TESTING": True}).test_client()
    assert client.get(f"/id/{BANBS}", headers={"Accept": "text/markdown"}).status_code == 406
    assert client.get(f"/data/{BANBS}.md").status_code == 404
    r = client.get(f"/id/{BANBS}", headers={"Accept": "text/turtle"})
    assert "text/markdown" not in r.headers["Link"]


def test_markdown_source_is_the_exact_file(md_app):
    r = md_app.test_client().get(f"/data/{BANBS}.md")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/markdown")
    assert r.data == SAMPLE_BANBS.read_bytes()


def test_markdown_source_is_what_the_build_read_even_after_the_file_changes(tmp_path):
    corpus = make_corpus(tmp_path / "c", {f"entities/campaigns/{BANBS}.md": SAMPLE_BANBS.read_text()})
    build(FolderSource(corpus), tmp_path / "s", DataIris(), workers=1)
    (corpus / "entities" / "campaigns" / f"{BANBS}.md").write_text("edited after the build\n")
    r = create_app({"STORE_PATH": tmp_path / "s", "TESTING": True}).test_client().get(f"/data/{BANBS}.md")
    assert r.status_code == 200 and r.data == SAMPLE_BANBS.read_bytes()


# --- data documents -----------------------------------------------------------------

@pytest.mark.parametrize("ext", list(FORMATS))
def test_data_document_by_extension_parses_and_holds_the_entity_graph(sample_app, sample_build, ext):
    media, fmt, rdflib_fmt = FORMATS[ext]
    r = sample_app.test_client().get(f"/data/{BANBS}.{ext}", headers={"Accept": "image/png"})  # extension wins
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == media
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    got = triples(r.data, fmt)
    store = Store.read_only(str(sample_build.store_path))
    own = {q.triple for q in store.quads_for_pattern(None, None, None, NamedNode(f"{BASE}graph/{BANBS}"))}
    assert own and own <= got, f"{len(own - got)} triples of the entity's graph missing from .{ext}"
    # Backlinks from other files: the launch event names the campaign in its own file.
    e = NamedNode(f"{BASE}id/{BANBS}")
    elsewhere = {q.triple for q in store.quads_for_pattern(e, None, None, None)} - own
    assert elsewhere and elsewhere <= got
    g = rdflib.Graph().parse(data=r.data, format=rdflib_fmt)
    assert len(g) == len(got), "rdflib reads the same document"


def test_data_document_names_the_linked_entities(sample_app):
    r = sample_app.test_client().get(f"/data/{BANBS}.nt")
    g = rdflib.Graph().parse(data=r.data, format="nt")
    label = rdflib.URIRef("http://www.w3.org/2000/01/rdf-schema#label")
    for org in frontmatter(SAMPLE_BANBS)["participating_orgs"]:
        name = frontmatter(ROOT / "entities" / "organizations" / f"{org}.md")["name"]
        assert (rdflib.URIRef(f"{BASE}id/{org}"), label, rdflib.Literal(name)) in g


def test_data_document_without_extension_negotiates(sample_app):
    client = sample_app.test_client()
    r = client.get(f"/data/{BANBS}", headers={"Accept": "application/n-triples"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/n-triples")
    assert r.headers["Content-Location"].endswith(f"/data/{BANBS}.nt")
    assert "Accept" in r.headers["Vary"]
    assert client.get(f"/data/{BANBS}", headers={"Accept": "image/png"}).status_code == 406
    assert client.get(f"/data/{BANBS}").headers["Content-Type"].startswith("text/turtle")


def test_the_shown_sparql_gives_exactly_the_data_document(head_app, head_build):
    store = Store.read_only(str(head_build.store_path))
    from mg_rdf.web.state import load_snapshot

    snap = load_snapshot(head_build.store_path, DataIris())
    for entity_id in (BANBS, "org-access-now"):
        doc = triples(head_app.test_client().get(f"/data/{entity_id}.nt").data, RdfFormat.N_TRIPLES)
        queried = set(store.query(document_query(snap, entity_id)))
        assert doc == queried, f"{entity_id}: {len(doc ^ queried)} triples differ between document and query"


# --- 404 and conditional requests ---------------------------------------------------------

@pytest.mark.parametrize("path", ["/id/unknown", "/id/org-does-not-exist", "/page/org-does-not-exist",
                                  "/data/unknown.ttl", "/data/org-does-not-exist.jsonld", "/data/unknown"])
def test_unknown_ids_are_404(sample_app, path):
    r = sample_app.test_client().get(path, headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert "No entity has the id" in r.get_data(as_text=True)


def test_unknown_id_page_is_html(sample_app):
    r = sample_app.test_client().get("/id/unknown", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html")
    assert "<h1>Not found</h1>" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", [f"/page/{BANBS}", f"/data/{BANBS}.ttl", f"/data/{BANBS}.jsonld"])
def test_etag_and_last_modified_answer_304(sample_app, path):
    client = sample_app.test_client()
    first = client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status_code == 200 and etag and modified
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.data
    assert again.headers["ETag"] == etag
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200


def test_each_representation_has_its_own_etag(sample_app):
    client = sample_app.test_client()
    tags = {client.get(p).headers["ETag"] for p in
            (f"/page/{BANBS}", f"/data/{BANBS}.ttl", f"/data/{BANBS}.nt", "/page/org-access-now")}
    assert len(tags) == 4


# --- the page: sample corpus --------------------------------------------------------------

def test_page_has_the_five_sections_in_order(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    positions = [body.find(f'<section id="{s}">') for s in SECTIONS]
    assert all(p > 0 for p in positions), dict(zip(SECTIONS, positions))
    assert positions == sorted(positions), "sections out of order"


def test_sample_page_in_focus_and_connections(sample_app):
    data = frontmatter(SAMPLE_BANBS)
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    text = page_text(body)
    declared = declared_from_yaml(data)
    assert f"{declared} declared connections" in text
    assert "Campaign" in text and data["status"] in text and data["confidence"] in text
    assert str(data["start_date"]) in text and "ongoing" in text and BANBS in text
    for tag in data["tags"]:
        assert f'?tag={tag}"' in body, f"tag {tag} does not link to a search"
    for org in data["participating_orgs"] + data["lead_orgs"]:
        name = frontmatter(ROOT / "entities" / "organizations" / f"{org}.md")["name"]
        assert f'<a class="entity" href="/page/{org}">{html.escape(name, quote=False)}</a>' in body
    # The launch event names the campaign in its own file: an inferred backlink.
    backlinks = body[body.index('id="backlinks"'):body.index('<section id="background">')]
    assert "/page/event-banbs-open-letter-launch-2021-06-07" in backlinks
    assert "lead organisation" in text and "participating organisation" in text
    # The strategy's body links here: a backlink marked as a mention in text.
    mention = re.search(r'<li><a class="entity" href="/page/strat-ban-not-regulate">[^<]*</a>(.*?)</li>',
                        backlinks, re.S)
    assert mention and "mention in text" in mention.group(1)


def test_affiliations_show_role_and_period(sample_app):
    path = ROOT / "entities" / "persons" / "person-daniel-leufer.md"
    data = frontmatter(path)
    body = sample_app.test_client().get("/page/person-daniel-leufer").get_data(as_text=True)
    direct = page_text(body[body.index('id="direct-links"'):body.index('id="backlinks"')])
    declared = len(data.get("affiliations") or []) + (1 if data.get("voice_entry") else 0)
    assert f"{declared} declared connections" in page_text(body)
    for aff in data["affiliations"]:
        assert f"{aff['role']}, {aff['period']}" in direct
    assert "affiliated with" in direct


def test_every_sample_page_renders_without_active_content(sample_app):
    client = sample_app.test_client()
    files = sorted((ROOT / "entities").glob("*/*.md"))
    assert len(files) > 30
    for f in files:
        r = client.get(f"/page/{f.stem}")
        assert r.status_code == 200, f.stem
        body = r.get_data(as_text=True)
        assert_safe(body[body.index("<main"):body.index("</main>")])


def test_body_links_resolve_to_pages_and_repository_paths_stay_text(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    background = body[body.index('<section id="background">'):body.index('<section id="sources">')]
    assert '<a href="/page/org-edri" class="entity">EDRi</a>' in background
    # A same-folder link (no ../) resolves too.
    assert 'href="/page/camp-edri-reclaim-your-face-eu-citizens-initiative-2020-2022"' in background
    assert "spec.md" not in re.sub(r'title="[^"]*"', "", background.split("the schema")[0][-200:])
    assert re.search(r'<span class="unlinked repo-path" title="schema/spec.md">the schema</span>', background)
    assert 'rel="nofollow noopener" class="external"' in background


def test_sources_show_note_checked_date_and_link_only_valid_urls(sample_app):
    data = frontmatter(SAMPLE_BANBS)
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    sources = page_text(body[body.index('<section id="sources">'):body.index('<section id="provenance">')])
    for s in data["sources"]:
        assert s["note"] in sources
        assert f"Checked {s['last_checked']}" in sources
        assert s["url"] in sources


def test_provenance_and_attribution(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    prov = page_text(body[body.index('<section id="provenance">'):])
    assert f"Source: entities/campaigns/{BANBS}.md" in prov
    assert "working tree" in prov     # the sample is built from a folder without a commit
    assert "CC BY 4.0" in prov


def test_page_links_every_other_format_and_the_query(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    head = body[:body.index("</head>")]
    for ext, (media, _, _) in FORMATS.items():
        assert f'<link rel="alternate" type="{media}" href="/data/{BANBS}.{ext}">' in head
    assert re.search(r'href="/query\?query=[^"]*CONSTRUCT', body)


def test_embedded_json_ld_is_schema_org(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    scripts = [s for (tag, attrs), s in zip([t for t in tags_of(body).tags if t[0] == "script"], tags_of(body).scripts)
               if attrs.get("type") == "application/ld+json"]
    assert len(scripts) == 1
    data = json.loads(scripts[0])
    assert data["@context"] == "https://schema.org" and data["@type"] == "Project"
    assert data["@id"] == f"{BASE}id/{BANBS}" and data["identifier"] == BANBS
    assert data["name"] == frontmatter(SAMPLE_BANBS)["name"]
    assert data["startDate"] == str(frontmatter(SAMPLE_BANBS)["start_date"])
    assert {m["@id"] for m in data["member"]} >= {f"{BASE}id/org-access-now", f"{BASE}id/org-edri"}


def test_neighbourhood_picture_links_each_neighbour(sample_app):
    body = sample_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    figure = body[body.index('<figure class="neighbourhood">'):body.index("</figure>")]
    data = frontmatter(SAMPLE_BANBS)
    for ref in data["lead_orgs"] + data["participating_orgs"] + data["events"] + data["strategies"]:
        assert f'href="/page/{ref}"' in figure, f"{ref} missing from the picture"
    shown = int(re.search(r"(\d+) direct neighbours? visible", figure).group(1))
    assert shown == len(set(re.findall(r'<a href="/page/([^"]+)" class="node t-[a-z-]+">', figure)))


def test_layout_is_deterministic_and_inside_the_picture():
    refs = [EntityRef(f"org-{i}", f"Organisation number {i}", "organization") for i in range(40)]
    mentions = [EntityRef(f"camp-{i}", f"Campaign {i}", "campaign") for i in range(30)]
    for direct in (refs[:5], refs):
        a = layout(EntityRef("org-x", "X", "organization"), direct, mentions[:3])
        b = layout(EntityRef("org-x", "X", "organization"), list(reversed(direct)), mentions[:3])
        assert a == b, "the same neighbours in another order give another picture"
        assert a.direct_shown == len(direct) and a.mentions_shown == 3
        for n in a.nodes:
            assert 0 < n.x < a.width and 0 < n.y < a.height
    big = layout(EntityRef("org-x", "X", "organization"), refs * 4, [])
    assert big.left_out == len(refs) * 4 - len(big.nodes) > 0


# --- hostile input ----------------------------------------------------------------------------

HOSTILE_NAME = 'Evil </script><script>alert("name")</script> & Co'
HOSTILE = f"""---
id: org-evil
type: organization
name: '{HOSTILE_NAME}'
status: active
website: javascript:alert(1)
related_orgs: [org-friend]
tags: ['<b>bold</b>', 'x" onmouseover="alert(4)']
mystery_field: '<script>alert(5)</script>'
sources:
  - url: javascript:alert(2)
    last_checked: 2026-01-01
    note: '<img src=x onerror=alert(3)> note'
  - url: https://example.org/ok
    last_checked: 2026-01-02
    note: fine
---

# Evil

<script>alert(6)</script>
<img src=x onerror=alert(7)>
[click](javascript:alert(8)) [data](data:text/html;base64,PHNjcmlwdD4=) <a href="javascript:alert(9)">raw</a>
[t](https://example.org/ "t\\" onclick=\\"alert(10)") [vb](vbscript:msgbox)
[friend](../organizations/org-friend.md) [ghost](../organizations/org-ghost.md) [spec](../../schema/spec.md)
<iframe src="https://evil.example"></iframe><style>body{{display:none}}</style>
<div onclick="alert(11)">div</div>

```
<script>alert(12)</script>
```
"""
FRIEND = """---
id: org-friend
type: organization
name: Friend
related_orgs: [org-evil]
---

A friend of [evil](org-evil.md).
"""


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("hostile") / "corpus", {
        "entities/organizations/org-evil.md": HOSTILE, "entities/organizations/org-friend.md": FRIEND})
    store = tmp_path_factory.mktemp("hostile-store")
    build(FolderSource(root, repository=""), store, DataIris())
    return create_app({"STORE_PATH": store, "TESTING": True})


def assert_safe(body: str) -> Tags:
    parsed = tags_of(body)
    for tag, attrs in parsed.tags:
        assert tag not in ("iframe", "img", "style", "object", "embed", "div") or not any(
            k.startswith("on") for k in attrs), tag
        assert tag not in ("iframe", "object", "embed"), f"<{tag}> survived"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler {name} on <{tag}>"
            if name in ("href", "src", "action") and value:
                assert not re.match(r"\s*(javascript|data|vbscript):", value, re.I), f"{name}={value}"
        if tag == "script":
            assert attrs.get("type") == "application/ld+json", "a script other than the JSON-LD survived"
    return parsed


def test_hostile_markdown_and_fields_are_sanitised(hostile_app):
    r = hostile_app.test_client().get("/page/org-evil")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert_safe(body[body.index("<main"):body.index("</main>")])   # what the entity's data fills
    parsed = tags_of(body[:body.index("</head>")])
    assert len(parsed.scripts) == 1
    assert json.loads(parsed.scripts[0])["name"] == HOSTILE_NAME, "the JSON-LD keeps the name, escaped"
    assert "</script><script>" not in body
    assert str(escape(HOSTILE_NAME)) in body, "the name shows as text"
    text = page_text(body)
    assert "not a valid http(s) address" in body      # javascript: source URL is text, not a link
    assert "unmapped field" in text and "Mystery field" in text
    assert '<a href="/page/org-friend" class="entity">friend</a>' in body
    assert 'title="no entity org-ghost in this build">ghost</span>' in body
    assert 'title="schema/spec.md">spec</span>' in body


def test_hostile_data_documents_still_parse(hostile_app):
    for ext, (_, fmt, _) in FORMATS.items():
        r = hostile_app.test_client().get(f"/data/org-evil.{ext}")
        names = {t.object.value for t in triples(r.data, fmt)
                 if t.predicate.value.endswith("#name") and t.subject.value.endswith("/org-evil")}
        assert names == {HOSTILE_NAME}


@pytest.mark.parametrize("markdown", [
    "<script>alert(1)</script>", "[x](javascript:alert(1))", "<a href='javascript:alert(1)'>x</a>",
    "<img src=x onerror=alert(1)>", "[x](JaVaScRiPt:alert(1))", "![x](javascript:alert(1))",
    "<svg onload=alert(1)>", "[x](  javascript:alert(1))", "<https://ok.example/\" onmouseover=\"alert(1)>",
])
def test_render_never_emits_active_content(markdown):
    assert_safe(render(markdown, "entities/organizations/org-x.md", lambda _: None))


def test_sanitiser_is_a_second_line_of_defence():
    out = sanitise('<a href="javascript:x" onclick="y">a</a><script>z()</script><p style="x" onmouseover="y">p</p>')
    assert_safe(out)
    assert "z()" not in out or "<script" not in out


# --- the real corpus ------------------------------------------------------------------------

def test_banbs_page_on_the_real_corpus(head_app, corpus_dir):
    path = corpus_dir / "entities" / "campaigns" / f"{BANBS}.md"
    data = frontmatter(path)
    body = head_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    text = page_text(body)
    assert f"{declared_from_yaml(data)} declared connections" in text
    for s in data["sources"]:
        assert s["note"] in text, s["note"][:60]
        assert f"Checked {s['last_checked']}" in text
    for org in set(data["lead_orgs"] + data["participating_orgs"]):
        org_file = corpus_dir / "entities" / "organizations" / f"{org}.md"
        if org_file.exists():
            assert frontmatter(org_file)["name"] in text, org
    assert f"Source: entities/campaigns/{BANBS}.md in movement-graph at pin 99e43d5" in text
    positions = [body.find(f'<section id="{s}">') for s in SECTIONS]
    assert positions == sorted(positions) and positions[0] > 0


def _frontmatter_values(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _frontmatter_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _frontmatter_values(v)
    else:
        yield value


def test_banbs_neighbour_count_matches_the_corpus_files(head_app, corpus_dir):
    """Direct neighbours: the ids this file names that exist, and the files naming it."""
    files = {}
    for f in (corpus_dir / "entities").rglob("*.md"):
        try:
            files[f] = frontmatter(f)
        except (yaml.YAMLError, IndexError):
            continue
    ids = {d.get("id") for d in files.values() if isinstance(d, dict)}
    own = next(d for d in files.values() if isinstance(d, dict) and d.get("id") == BANBS)
    named = {v for k in ("lead_orgs", "participating_orgs", "events", "strategies") for v in own.get(k) or []}
    naming = {d["id"] for d in files.values() if isinstance(d, dict) and d.get("id") != BANBS
              and BANBS in set(_frontmatter_values({k: v for k, v in d.items() if k != "id"}))}
    expected = len((named & ids) | naming)
    body = head_app.test_client().get(f"/page/{BANBS}").get_data(as_text=True)
    assert f"{expected} direct neighbours visible" in page_text(body)


def test_entity_pages_are_fast_on_the_real_corpus(head_app, head_build):
    """Measured, and bounded loosely so only a pathological slowdown fails."""
    from mg_rdf.web.state import load_snapshot

    ids = sorted(load_snapshot(head_build.store_path, DataIris()).entities)
    client = head_app.test_client()
    client.get(f"/page/{ids[0]}")
    times = []
    for entity_id in ids[::4]:
        t0 = time.perf_counter()
        assert client.get(f"/page/{entity_id}").status_code == 200
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    median, p99 = statistics.median(times), times[int(len(times) * 0.99)]
    print(f"\nentity page, first request each ({len(times)} entities): median {median:.1f} ms, p99 {p99:.1f} ms")
    assert median < 150, f"entity pages take {median:.0f} ms (median)"


def test_live_server_dereferences_with_303_and_conditional_get(head_server):
    url = f"{head_server.url}/id/{BANBS}"
    r = requests.get(url, headers={"Accept": "text/turtle"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/data/{BANBS}.ttl")
    assert "Accept" in r.headers["Vary"]
    doc = requests.get(url, headers={"Accept": "text/turtle"}, timeout=10)
    assert doc.status_code == 200 and doc.headers["Content-Type"].startswith("text/turtle")
    assert any(t.subject.value == f"{BASE}id/{BANBS}" for t in triples(doc.content, RdfFormat.TURTLE))
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and page.url.endswith(f"/page/{BANBS}")
    again = requests.get(page.url, headers={"If-None-Match": page.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    missing = requests.get(f"{head_server.url}/id/unknown", timeout=10)
    assert missing.status_code == 404 and "text/html" in missing.headers["Content-Type"]
    assert requests.head(f"{head_server.url}/data/{BANBS}.jsonld", timeout=10).status_code == 200


def test_banbs_counts_match_the_public_site_at_v1(v1_build):
    """PRODUCT.md: at v1.0.0 (3cc1a36) the public graph site shows 7 declared connections,
    6 direct neighbours and 7 adjacencies for the #BanBS campaign."""
    app = create_app({"STORE_PATH": v1_build.store_path.parent.parent, "TESTING": True})
    text = page_text(app.test_client().get(f"/page/{BANBS}").get_data(as_text=True))
    assert "7 declared connections" in text
    assert "6 direct neighbours visible" in text
    assert "7 adjacencies, by relation" in text
    assert f"Source: entities/campaigns/{BANBS}.md in movement-graph at pin 3cc1a36" in text
