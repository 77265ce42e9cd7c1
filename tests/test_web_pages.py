"""Home, browse and search pages, checked against counts taken from the corpus files.

Expected values are computed here from the Markdown files (folder names, YAML
frontmatter), not from the store the pages read, so a mapping or a page bug shows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from pyoxigraph import NamedNode, Store

from mg_rdf import schema
from mg_rdf.web import create_app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ENTITIES = ROOT / "entities"
VOID_TRIPLES = "http://rdfs.org/ns/void#triples"


def frontmatter(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---", 2)[1])


def counts_by_folder(entities: Path) -> dict[str, int]:
    """Entity files per type, by the folder they sit in (the corpus's own grouping)."""
    return {schema.BY_DIRECTORY[d.name].name: len(list(d.glob("*.md")))
            for d in entities.iterdir() if d.is_dir() and d.name in schema.BY_DIRECTORY}


def linked_ids(html: str) -> list[str]:
    return [unquote(m) for m in re.findall(r'<a href="/id/([^"]+)">', html)]


@pytest.fixture(scope="module")
def head_app(head_build):
    return create_app({"STORE_PATH": head_build.store_path.parent.parent, "TESTING": True})


# --- home ------------------------------------------------------------------

def test_home_shows_entity_counts_by_type_matching_the_corpus_folders(sample_app):
    html = sample_app.test_client().get("/").get_data(as_text=True)
    shown = {t: int(n) for t, n in re.findall(
        r'data-type="([a-z-]+)">\s*<span class="label">[^<]*</span>\s*<span class="count" data-count="(\d+)"', html)}
    expected = counts_by_folder(SAMPLE_ENTITIES)
    assert shown == {t: expected.get(t, 0) for t in schema.TYPES}, "home page counts differ from entities/ folders"
    total = int(re.search(r'id="entity-total">([\d,]+)<', html).group(1).replace(",", ""))
    assert total == sum(expected.values())


def test_home_shows_total_triples_licence_and_commit(sample_app, sample_build):
    store = Store.read_only(str(sample_build.store_path))
    base = "https://w3id.org/movement-graph/"
    meta = sum(1 for g in ("graph/dataset", "graph/build")
               for _ in store.quads_for_pattern(None, None, None, NamedNode(base + g)))
    html = sample_app.test_client().get("/").get_data(as_text=True)
    shown = int(re.search(r'id="triple-total">([\d,]+)<', html).group(1).replace(",", ""))
    assert shown == len(store) - meta, "triple count is not the store's size without its own description"
    commit = sample_build.analysis.source.provenance.commit
    if commit:
        assert commit in html, "the corpus commit must be named on the home page"
    else:   # a sample corpus outside git says so instead
        assert "uncommitted working tree" in html
    assert "https://creativecommons.org/licenses/by/4.0/" in html and "Licensed CC BY 4.0" in html
    for link in ('href="/sparql"', 'href="/query"', 'href="/dumps/"', 'href="/ontology"'):
        assert link in html


def test_every_page_footer_carries_the_attribution(sample_app):
    client = sample_app.test_client()
    for url in ("/", "/browse", "/browse/person", "/search?q=a", "/ontology", "/shapes", "/dumps/"):
        html = client.get(url).get_data(as_text=True)
        assert re.search(r'class="attribution">Data: [^<]*Movement Graph[^<]*CC BY 4\.0', html), url


# --- browse ------------------------------------------------------------------

def test_browse_lists_every_type_with_its_count(sample_app):
    html = sample_app.test_client().get("/browse").get_data(as_text=True)
    for type_name, n in counts_by_folder(SAMPLE_ENTITIES).items():
        assert f'href="/browse/{type_name}" data-type="{type_name}"' in html
        assert f'data-count="{n}"' in html


def test_browse_persons_on_the_real_corpus_pages_by_fifty(head_app, corpus_dir):
    files = sorted((corpus_dir / "entities" / "persons").glob("*.md"))
    pages = math.ceil(len(files) / 50)
    assert pages > 1, "the real corpus should need more than one page of persons"
    client = head_app.test_client()
    seen: list[str] = []
    for n in range(1, pages + 1):
        r = client.get(f"/browse/person?page={n}")
        assert r.status_code == 200
        html = r.get_data(as_text=True)
        ids = linked_ids(html)
        assert len(ids) == (50 if n < pages else len(files) - 50 * (pages - 1)), f"page {n}"
        assert (f'rel="next" href="/browse/person?page={n + 1}"' in html) == (n < pages), f"next link on page {n}"
        assert ('rel="prev"' in html) == (n > 1), f"prev link on page {n}"
        assert f"Page {n} of {pages}" in html
        assert f'data-total="{len(files)}"' in html
        seen += ids
    assert sorted(seen) == sorted(f.stem for f in files), "pages together must list every person once"
    assert client.get(f"/browse/person?page={pages + 1}").status_code == 404
    assert client.get("/browse/person?page=zero").status_code == 400


def test_browse_pages_are_sorted_by_name(head_app, corpus_dir):
    names = {f.stem: str(frontmatter(f)["name"]) for f in (corpus_dir / "entities" / "campaigns").glob("*.md")}
    html = head_app.test_client().get("/browse/campaign").get_data(as_text=True)
    ids = linked_ids(html)
    assert ids == sorted(names, key=lambda i: (names[i].casefold(), i))[:50]


def test_browse_unknown_type_is_404_and_folder_name_redirects(sample_app):
    client = sample_app.test_client()
    assert client.get("/browse/nonsense").status_code == 404
    r = client.get("/browse/local-groups")
    assert r.status_code == 301 and r.headers["Location"].endswith("/browse/local-group")


# --- search ------------------------------------------------------------------

def _sample_names() -> dict[str, str]:
    return {f.stem: str(frontmatter(f)["name"]) for f in SAMPLE_ENTITIES.rglob("*.md")}


@pytest.mark.parametrize("needle", ["access NOW", "face", "org-", "Joy"])
def test_search_by_name_is_a_case_insensitive_substring_match(sample_app, needle):
    names = _sample_names()
    expected = {i for i, n in names.items() if needle.casefold() in n.casefold() or needle.casefold() in i}
    assert expected, f"the sample corpus should have a name containing {needle!r}"
    r = sample_app.test_client().get("/search", query_string={"q": needle})
    assert r.status_code == 200
    assert set(linked_ids(r.get_data(as_text=True))) == expected


def test_search_by_tag_2023_on_the_real_corpus(head_app, corpus_dir):
    expected = {f.stem for f in (corpus_dir / "entities").rglob("*.md")
                if any(str(t) == "2023" for t in frontmatter(f).get("tags") or [])}
    assert expected, "the real corpus has a bare-year tag 2023"
    r = head_app.test_client().get("/search?tag=2023", headers={"Accept": "application/json"})
    body = r.get_json()
    assert body["total"] == len(expected)
    assert {e["id"] for e in body["results"]} == expected
    assert body["tag"]["iri"] == "https://w3id.org/movement-graph/tag/2023"
    html = head_app.test_client().get("/search?tag=2023").get_data(as_text=True)
    assert set(linked_ids(html)) == expected and "Tagged <q>2023</q>" in html


def test_search_by_tag_with_type_filter(head_app, corpus_dir):
    tagged = Counter()
    for f in (corpus_dir / "entities").rglob("*.md"):
        fm = frontmatter(f)
        if "facial-recognition" in [str(t) for t in fm.get("tags") or []]:
            tagged[fm["type"]] += 1
    client = head_app.test_client()
    everything = client.get("/search?tag=facial-recognition&format=json").get_json()
    assert everything["total"] == sum(tagged.values())
    only = client.get("/search?tag=facial-recognition&type=campaign&format=json").get_json()
    assert only["total"] == tagged["campaign"] and all(e["type"] == "campaign" for e in only["results"])
    assert everything["pages"] == math.ceil(sum(tagged.values()) / 50)


def test_search_answers_json_when_asked(sample_app):
    client = sample_app.test_client()
    r = client.get("/search?q=access", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert "Accept" in r.headers.get("Vary", "")
    body = r.get_json()
    names = _sample_names()
    expected = {i for i, n in names.items() if "access" in n.casefold() or "access" in i}
    assert {e["id"] for e in body["results"]} == expected
    first = body["results"][0]
    assert first["iri"] == f"https://w3id.org/movement-graph/id/{first['id']}"
    assert first["page"].endswith(f"/id/{first['id']}") and first["name"] == names[first["id"]]
    browser = client.get("/search?q=access", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.mimetype == "text/html"
    assert client.get("/search?q=access", headers={"Accept": "image/png"}).status_code == 406


def test_search_escapes_what_it_echoes(sample_app):
    r = sample_app.test_client().get("/search", query_string={"q": '<script>alert("x")</script>'})
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_search_refuses_bad_parameters(sample_app):
    client = sample_app.test_client()
    assert client.get("/search?q=" + "a" * 500).status_code == 400
    assert client.get("/search?q=a&type=planet").status_code == 400
    r = client.get("/search?q=a&type=planet&format=json")
    assert r.status_code == 400 and "planet" in r.get_json()["error"]


def test_search_suggests_tags_containing_the_words(head_app):
    body = head_app.test_client().get("/search?q=facial&format=json").get_json()
    labels = [t["label"] for t in body["matching_tags"]]
    assert "facial-recognition" in labels
