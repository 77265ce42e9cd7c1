"""Pages and data documents precomputed at build time (web/page_data.py) are what requests
made from the store give: for every entity of the real corpus, and after incremental builds."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest

from conftest import ROOT
from mg_rdf.build import BuildMemory, build
from mg_rdf.source import FolderSource
from mg_rdf.store import current_build
from mg_rdf.vocab import DataIris
from mg_rdf.web import create_app, page_cache, page_data

IRIS = DataIris()
CAMP = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"


def rows(store: Path) -> dict[str, dict]:
    """Every stored page and document of the current build, decompressed."""
    db = sqlite3.connect(current_build(store) / page_data.FILE)
    out: dict[str, dict] = {}
    for eid, head, data, sections, deps in db.execute("SELECT id, head, schema_org, sections, deps FROM pages"):
        out[eid] = {"head": json.loads(head), "schema_org": json.loads(data),
                    "sections": zlib.decompress(sections).decode(), "deps": json.loads(deps)}
    for eid, nt, prefixes in db.execute("SELECT id, nt, prefixes FROM documents"):
        out[eid].update(nt=zlib.decompress(nt).decode(), prefixes=json.loads(prefixes))
    db.close()
    return out


def responses(store: Path, ids: list[str], stored: bool, monkeypatch) -> dict[str, tuple]:
    """Page and documents of each id, with the stored rows, or made from the store (rows hidden)."""
    with monkeypatch.context() as m:
        if not stored:
            m.setattr(page_data, "_reader", lambda snap: None)
            m.setattr(page_cache, "_file", lambda snap: None)   # nor the pages kept by requests
        client = create_app({"STORE_PATH": store, "TESTING": True}).test_client()
        out = {}
        for eid in ids:
            got = []
            for url in (f"/page/{eid}", f"/data/{eid}.ttl", f"/data/{eid}.jsonld", f"/data/{eid}.nt"):
                r = client.get(url)
                got.append((url, r.status_code, r.data, r.headers.get("ETag"), r.headers.get("Link")))
            out[eid] = tuple(got)
        return out


@pytest.fixture(scope="module")
def head_pages_store(corpus_dir, iris, tmp_path_factory) -> Path:
    """The real corpus built with its pages precomputed (`mg-rdf build --pages`)."""
    from conftest import HEAD_COMMIT

    path = tmp_path_factory.mktemp("store-head-pages")
    build(FolderSource(corpus_dir, commit=HEAD_COMMIT), path, iris, pages=page_data.write)
    return path


@pytest.mark.corpus
def test_stored_pages_and_documents_equal_the_live_ones_for_every_entity(head_pages_store, monkeypatch):
    store = head_pages_store
    app = create_app({"STORE_PATH": store, "TESTING": True})
    snap = app.extensions["mg_rdf.store"].current()
    ids = sorted(snap.entities)
    assert len(ids) == 828
    assert all(page_data.page(snap, eid) is not None and page_data.document(snap, eid) is not None for eid in ids)
    stored = responses(store, ids, True, monkeypatch)
    live = responses(store, ids, False, monkeypatch)
    differ = [eid for eid in ids if stored[eid] != live[eid]]
    assert not differ, f"{len(differ)} entities differ, e.g. {differ[:5]}"


def _backlinks(sections: str) -> str:
    start = sections.index('id="backlinks"')
    return sections[start:sections.index('</div>\n  </div>', start)]


@pytest.mark.parametrize("remember", [False, True], ids=["from-disk", "remembered"])
def test_incremental_builds_store_what_a_full_build_stores(tmp_path, remember):
    """An edited entity changes its neighbours' backlinks: the incremental build redoes them
    (and only what the edit touches), and every row equals a full build's. ``remembered``: built
    as a watcher builds (BuildMemory: its working copy is checkpointed before the pages)."""
    memory = BuildMemory() if remember else None
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, IRIS, workers=1, pages=page_data.write, memory=memory)
    before = rows(store)
    assert CAMP not in _backlinks(before["org-big-brother-watch"]["sections"])

    def rebuild(label: str) -> dict[str, dict]:
        inc = build(FolderSource(corpus), store, IRIS, workers=1, pages=page_data.write, memory=memory)
        assert inc.incremental
        full_store = tmp_path / f"full-{label}"
        build(FolderSource(corpus), full_store, IRIS, workers=1, full=True, pages=page_data.write)
        got, want = rows(store), rows(full_store)
        assert got.keys() == want.keys()
        assert [e for e in got if got[e] != want[e]] == [], f"{label}: incremental rows differ from a full build's"
        return got

    camp = corpus / f"entities/campaigns/{CAMP}.md"
    text = camp.read_text()
    camp.write_text(text.replace("participating_orgs: [", "participating_orgs: [org-big-brother-watch, ", 1))
    after = rebuild("reference added")
    assert f'href="/page/{CAMP}"' in _backlinks(after["org-big-brother-watch"]["sections"])
    untouched = [e for e in after if after[e] == before[e]]
    assert len(untouched) > len(after) // 2, "an edit of one entity redid most pages"

    camp.write_text(text)
    again = rebuild("reference removed")
    assert CAMP not in _backlinks(again["org-big-brother-watch"]["sections"])

    org = corpus / "entities/organizations/org-edri.md"   # a new name shows on every page linking to it
    org.write_text(org.read_text().replace("name: ", "name: Renamed ", 1))
    renamed = rebuild("name changed")
    assert "Renamed" in renamed[CAMP]["sections"]

    (corpus / "entities/persons/person-hamid-khan.md").unlink()   # pages linking to it show it missing
    rebuild("deletion")
    if memory is not None:
        memory.forget()


def test_pages_without_stored_rows_are_made_from_the_store(sample_build, tmp_path, monkeypatch):
    """Pages are precomputed only with --pages; a build without the file (the default, an older
    build, a remote store) makes the same pages from the store."""
    assert not (sample_build.store_path / page_data.FILE).exists()
    store = tmp_path / "store"
    build(FolderSource(ROOT, repository=""), store, IRIS, workers=1, pages=page_data.write)
    assert (current_build(store) / page_data.FILE).is_file()
    ids = [CAMP, "org-edri", "person-hamid-khan"]
    assert responses(store, ids, True, monkeypatch) == responses(store, ids, False, monkeypatch)
