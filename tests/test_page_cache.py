"""Pages and data documents kept by the request that made them (web/page_cache.py): a kept
page is the page made from the store, byte for byte; other processes use it; and nothing
about the cache file (missing, unwritable, damaged, another version's) changes an answer."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from conftest import ROOT
from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.store import current_build
from mg_rdf.vocab import DataIris
from mg_rdf.web import create_app, entities, page_cache

URLS = ("/page/{}", "/data/{}.ttl", "/data/{}.jsonld", "/data/{}.nt", "/data/{}.rdf")


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    """The sample corpus, built into a store of this test's own (its cache file starts empty)."""
    path = tmp_path / "store"
    build(FolderSource(ROOT, repository=""), path, DataIris())
    page_cache._files.clear()
    yield path
    page_cache._files.clear()


def ids(store: Path) -> list[str]:
    return sorted(p.stem for p in (ROOT / "entities").glob("*/*.md"))


def answers(store: Path, entity_ids: list[str], root: str = "") -> dict[str, tuple]:
    client = create_app({"STORE_PATH": store, "TESTING": True}).test_client()
    out = {}
    for eid in entity_ids:
        for url in URLS:
            r = client.get(url.format(eid), base_url=f"http://localhost{root}/")
            out[url.format(eid)] = (r.status_code, r.data, r.headers.get("ETag"), r.headers.get("Content-Type"))
    return out


def made_from_store(store: Path, entity_ids: list[str], monkeypatch, root: str = "") -> dict[str, tuple]:
    with monkeypatch.context() as m:
        m.setattr(page_cache, "_file", lambda snap: None)
        return answers(store, entity_ids, root)


def refuse_to_make(monkeypatch) -> None:
    """From here on, a page or document made from the store fails the test."""
    def fail(*args, **kwargs):
        raise AssertionError("made from the store although it was kept")
    monkeypatch.setattr(entities, "gather", fail)
    monkeypatch.setattr(entities, "document_triples", fail)


def test_kept_pages_are_the_pages_made_from_the_store(store, monkeypatch):
    every = ids(store)
    assert len(every) >= 10
    expected = made_from_store(store, every, monkeypatch)
    assert all(a[0] == 200 for a in expected.values())
    assert not (current_build(store) / page_cache.FILE).exists()
    first = answers(store, every)                      # made, and kept
    assert first == expected
    db = sqlite3.connect(current_build(store) / page_cache.FILE)
    assert db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == len(every)
    assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == len(every)
    db.close()
    page_cache._files.clear()                          # as another process would: open the file anew
    refuse_to_make(monkeypatch)
    assert answers(store, every) == expected           # read back, nothing made


def test_links_below_another_root_are_kept_apart(store, monkeypatch):
    eid = ids(store)[0]
    at_root = made_from_store(store, [eid], monkeypatch)
    below = made_from_store(store, [eid], monkeypatch, root="/mg")
    assert at_root[f"/page/{eid}"][1] != below[f"/page/{eid}"][1]   # its links carry /mg
    assert answers(store, [eid]) == at_root
    assert answers(store, [eid], root="/mg") == below
    page_cache._files.clear()
    refuse_to_make(monkeypatch)
    assert answers(store, [eid], root="/mg") == below
    assert answers(store, [eid]) == at_root


def test_rows_of_other_code_are_not_used(store, monkeypatch):
    eid = ids(store)[0]
    expected = answers(store, [eid])                   # kept under this code's fingerprint
    monkeypatch.setattr(page_cache, "code_fingerprint", lambda: "another version of mg-rdf")
    page_cache._files.clear()
    made = []
    real = entities.gather
    monkeypatch.setattr(entities, "gather", lambda *a, **k: made.append(a[1]) or real(*a, **k))
    assert answers(store, [eid]) == expected
    assert made == [eid]


@pytest.mark.parametrize("damage", ["garbage", "a directory", "unwritable"])
def test_a_cache_file_that_cannot_be_used_changes_no_answer(store, monkeypatch, damage):
    every = ids(store)[:4]
    expected = made_from_store(store, every, monkeypatch)
    path = current_build(store) / page_cache.FILE
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "a directory":
        path.mkdir()
    else:   # a store on a read-only disk: connecting fails (root ignores file modes, so simulate it)
        def unwritable(p):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        monkeypatch.setattr(page_cache, "_File", unwritable)
    assert answers(store, every) == expected
    assert answers(store, every) == expected
