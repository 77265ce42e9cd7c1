"""Entity pages and data documents precomputed at build time: ``<database>/mg-pages.sqlite``.

An entity page costs ~10-20 ms to make from the store (reading its graph and what other
graphs say about it, names of every neighbour, rendering its prose, the audit and the
sections' template), a data document ~5-8 ms. A build never changes once it is written,
so the build makes them once (``write``), and a request reads one row (``page``,
``document``) and renders only what depends on the request: the page's frame
(entity.html: head, pin banner, releases, formats) and the JSON-LD's ``url``.

One SQLite file per database (the current pin's ``builds/<id>/``, each other pin's
``builds/<id>.pins/<key>/``), written into the Oxigraph directory before the build is
renamed into place, so the store swap changes pages and data together and a failed build
leaves the previous ones serving. Rows:

- ``pages``: the page head (id, IRI, name, type), the schema.org JSON-LD without its
  ``url``, the sections In focus … Provenance as HTML (zlib) rendered for the default links
  (``/page/{id}``, no pin), and the ids the page and the document depend on;
- ``documents``: the data document's triples in their order (N-Triples, zlib) and the
  prefixes its serialisations declare;
- ``meta``: the code fingerprint (templates and page code: another version of mg-rdf
  ignores the file), build-wide inputs (tag and ontology labels, attribution), every
  entity's summary and the hash of what non-entity graphs say about it.

A request that cannot use a row — a pinned page (its links carry ``?pin=``), an app not at
the root, a remote store (no file), a file from other code — is answered from the store as
before. ``tests/test_page_data.py`` checks that the rows equal what requests make from the
store, for every entity of the real corpus.

An incremental build starts from a copy of the previous file and recomputes the entities
whose graph or audit was rewritten or whose summary or non-entity statements changed (T),
every entity whose page or document showed one of T (the old dependencies), and every entity
T's pages show before or after (new backlinks, lost backlinks). Build-wide changes (tags,
ontology, attribution, code) recompute everything.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_lib
import json
import os
import re
import sqlite3
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import markdown_it
import pyoxigraph
from pyoxigraph import NamedNode, RdfFormat, Triple, parse, serialize

from .. import __version__

FILE = "mg-pages.sqlite"
FORMAT = 1
DEFAULT_PREFIX = "/page/"   # entity links of the stored sections: the app at the root, no pin

_HERE = Path(__file__).parent
# The code that decides what a stored row holds: another version of any of these ignores the file.
_CODE = ("web/entities.py", "web/entity_view.py", "web/audit_view.py", "web/markdown.py", "web/neighbourhood.py",
         "web/page_data.py", "web/state.py", "web/templates/_entity_sections.html",
         "web/templates/_entity_macros.html", "web/templates/_entity_audit.html", "schema.py", "vocab.py",
         "links.py", "audits.py")


@functools.cache
def code_fingerprint() -> str:
    h = hashlib.sha1(f"{FORMAT}\0{__version__}\0{markdown_it.__version__}\0{pyoxigraph.__version__}".encode())
    try:
        from importlib.metadata import version
        h.update(version("nh3").encode())
    except Exception:   # noqa: BLE001 - no metadata: the files below still decide
        pass
    for name in _CODE:
        h.update(name.encode() + b"\0" + (_HERE.parent / name).read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class PageHead:
    """What entity.html itself shows of the entity (the sections get the whole EntityView)."""

    id: str
    iri: str
    name: str
    type: str
    type_label: str


@dataclass
class StoredPage:
    head: PageHead
    schema_org: dict      # the JSON-LD, its "url" still ""
    sections: str         # _entity_sections.html for DEFAULT_PREFIX and no pin


# -- reading (the web process) ----------------------------------------------------------

class _Reader:
    """One build's file, opened read-only and immutable (it never changes once written)."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True,
                                    check_same_thread=False)
        self.lock = threading.Lock()

    def one(self, sql: str, key: str) -> tuple | None:
        with self.lock:
            return self.conn.execute(sql, (key,)).fetchone()


_readers: dict[str, _Reader | None] = {}
_lock = threading.Lock()


def _reader(snap) -> _Reader | None:
    path = snap.build_dir / FILE
    key = str(path)
    try:
        return _readers[key]
    except KeyError:
        pass
    with _lock:
        if key in _readers:
            return _readers[key]
        found = None
        if path.is_file():
            try:
                found = _Reader(path)
                row = found.one("SELECT value FROM meta WHERE key = ?", "fingerprint")
                if row is None or row[0] != code_fingerprint():
                    found = None   # made by other code: pages come from the store
            except sqlite3.Error:
                found = None
        if len(_readers) >= 16:    # a server sees a build, its pins and the one before
            _readers.clear()
        _readers[key] = found
        return found


def page(snap, entity_id: str) -> StoredPage | None:
    """The stored page of ``entity_id`` (a key of ``snap.entities``), or None."""
    r = _reader(snap)
    row = r.one("SELECT head, schema_org, sections FROM pages WHERE id = ?", entity_id) if r else None
    if row is None:
        return None
    return page_from_columns(row)


def document(snap, entity_id: str) -> tuple[list[Triple], dict[str, str]] | None:
    """The stored data document of ``entity_id``: its triples in order and its prefixes, or None."""
    r = _reader(snap)
    row = r.one("SELECT nt, prefixes FROM documents WHERE id = ?", entity_id) if r else None
    if row is None:
        return None
    return document_from_columns(row)


# -- the columns of a stored page and document (also page_cache's) -----------------------

def page_columns(head: PageHead, schema_org: dict, sections: str) -> tuple[str, str, bytes]:
    """A page as stored: head, schema.org JSON-LD (its ``url`` still ""), sections (zlib)."""
    return (json.dumps([head.id, head.iri, head.name, head.type, head.type_label], ensure_ascii=False),
            json.dumps(schema_org, ensure_ascii=False), zlib.compress(sections.encode(), 1))


def page_from_columns(row: tuple) -> StoredPage:
    return StoredPage(PageHead(*json.loads(row[0])), json.loads(row[1]), zlib.decompress(row[2]).decode())


def document_columns(triples: list[Triple], prefixes: dict[str, str]) -> tuple[bytes, str]:
    """A data document as stored: its triples in order (N-Triples, zlib) and its prefixes."""
    return zlib.compress(serialize(triples, format=RdfFormat.N_TRIPLES), 1), json.dumps(prefixes, sort_keys=True)


def document_from_columns(row: tuple) -> tuple[list[Triple], dict[str, str]]:
    return [q.triple for q in parse(zlib.decompress(row[0]), format=RdfFormat.N_TRIPLES)], json.loads(row[1])


# -- writing (the build) --------------------------------------------------------------------

_SCHEMA = """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pages (id TEXT PRIMARY KEY, head TEXT NOT NULL, schema_org TEXT NOT NULL, sections BLOB NOT NULL,
                    deps TEXT NOT NULL);
CREATE TABLE documents (id TEXT PRIMARY KEY, nt BLOB NOT NULL, prefixes TEXT NOT NULL);"""
_HREF = re.compile(r'href="([^"]*)"')
_MISSING = re.compile(r'title="no entity (.*?) in this build"')


@dataclass
class WriteStats:
    entities: int
    computed: int
    seconds: float
    bytes: int
    incremental: bool


def write(store, directory: Path, iris, previous_dir: Path | None = None,
          changed_graphs: set[str] | None = None) -> WriteStats:
    """Write ``directory/mg-pages.sqlite`` for the database ``store`` (open, complete).

    ``previous_dir``/``changed_graphs``: the database this one was copied from and the
    graphs the build rewrote in it (entity and audit graphs); without them, every page."""
    from . import audit_view, create_app
    from .entities import _prefixes_used, document_triples, render_sections, schema_org
    from .entity_view import gather, labels
    from .state import load_snapshot

    t0 = time.perf_counter()
    version = f"pages-{directory.name}-{uuid.uuid4().hex[:8]}"   # caches of the web code: not a served build's
    snap = load_snapshot(directory, iris, store=store, version=version, built_at=0.0)
    audit_view._WARMED.add(version)   # no read-ahead thread: every audit is read below, once
    summaries = {eid: [e.type, e.name, e.path, e.blob] for eid, e in sorted(snap.entities.items())}
    build_wide = _digest([sorted(labels(snap).items()), sorted(audit_view.definitions(snap).items()),
                          snap.facts.get("attribution", ""), snap.facts.get("repository", "")])
    extras = _non_entity_statements(store, snap, iris)

    old = _previous(previous_dir, build_wide) if changed_graphs is not None else None
    tmp = directory / (FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    todo: set[str]
    if old is None:
        db = sqlite3.connect(tmp)
        db.executescript(_SCHEMA)
        todo = set(summaries)
    else:
        old.close()
        with open(previous_dir / FILE, "rb") as src, open(tmp, "wb") as dst:   # type: ignore[operator]
            dst.write(src.read())
        db = sqlite3.connect(tmp)
        todo = set()
    try:
        app = create_app({"STORE_PATH": directory.parent, "BASE": iris.base, "TESTING": True})
        computed: dict[str, set[str]] = {}

        def compute(eid: str) -> None:
            view = gather(snap, eid, DEFAULT_PREFIX, "")
            sections = render_sections(snap, view, DEFAULT_PREFIX, "", None)
            data = schema_org(view, "", iris)
            triples = document_triples(snap, eid)
            deps = _page_deps(view, sections, iris) | _document_deps(triples, iris)
            deps.discard(eid)
            head = PageHead(view.id, view.iri, view.name, view.type, view.type_label)
            db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                       (eid, *page_columns(head, data, sections), json.dumps(sorted(deps), ensure_ascii=False)))
            db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                       (eid, *document_columns(triples, _prefixes_used(snap, triples))))
            computed[eid] = deps

        with app.test_request_context("/"):
            if old is None:
                for eid in sorted(todo):
                    compute(eid)
            else:
                meta = dict(db.execute("SELECT key, value FROM meta"))
                old_summaries, old_extras = json.loads(meta["summaries"]), json.loads(meta["extras"])
                old_deps = {eid: set(json.loads(d)) for eid, d in db.execute("SELECT id, deps FROM pages")}
                graph_ids = {}
                for eid in {*summaries, *old_summaries}:
                    graph_ids[iris.graph(eid)] = eid
                    graph_ids[_audit_graph(iris, eid)] = eid
                touched = {graph_ids[g] for g in changed_graphs if g in graph_ids}   # type: ignore[union-attr]
                touched |= {e for e in {*summaries, *old_summaries} if summaries.get(e) != old_summaries.get(e)}
                touched |= {e for e in {*extras, *old_extras} if extras.get(e) != old_extras.get(e)}
                todo = set(touched)
                for eid in touched:
                    todo |= old_deps.get(eid, set())
                todo |= {p for p, deps in old_deps.items() if deps & touched}
                for eid in sorted(touched & summaries.keys()):   # first: what they show now joins the work
                    compute(eid)
                    todo |= computed[eid]
                for eid in sorted((todo & summaries.keys()) - computed.keys()):
                    compute(eid)
                gone = sorted(set(old_deps) - summaries.keys())
                db.executemany("DELETE FROM pages WHERE id = ?", [(e,) for e in gone])
                db.executemany("DELETE FROM documents WHERE id = ?", [(e,) for e in gone])
        meta = {"format": str(FORMAT), "fingerprint": code_fingerprint(), "build_wide": build_wide,
                "prefix": DEFAULT_PREFIX, "summaries": json.dumps(summaries, ensure_ascii=False),
                "extras": json.dumps(extras, sort_keys=True)}
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(meta.items()))
        db.commit()
        if old is None:
            db.execute("VACUUM")
    finally:
        db.close()
    os.replace(tmp, directory / FILE)
    return WriteStats(len(summaries), len(computed), time.perf_counter() - t0, (directory / FILE).stat().st_size,
                      old is not None)


def _audit_graph(iris, eid: str) -> str:
    from ..audits import audit_graph_iri
    return audit_graph_iri(iris, eid)


def _digest(value) -> str:
    return hashlib.sha1(json.dumps(value, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _previous(previous_dir: Path | None, build_wide: str) -> sqlite3.Connection | None:
    """The previous database's file, when it was made by this code from the same build-wide inputs."""
    if previous_dir is None or not (previous_dir / FILE).is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{quote(str(previous_dir / FILE))}?mode=ro", uri=True)
        meta = dict(db.execute("SELECT key, value FROM meta"))
    except sqlite3.Error:
        return None
    if meta.get("fingerprint") != code_fingerprint() or meta.get("build_wide") != build_wide:
        db.close()
        return None
    return db


def _non_entity_statements(store, snap, iris) -> dict[str, str]:
    """Per entity, a hash of the quads about it in graphs that are neither an entity's nor an
    audit's (linkset, renames, dataset …): a data document holds them, builds rewrite them."""
    from ..vocab import ONTOLOGY_IRI, SHAPES_IRI
    own = {iris.graph(eid) for eid in snap.entities} | {_audit_graph(iris, eid) for eid in snap.entities}
    own |= {ONTOLOGY_IRI, SHAPES_IRI, iris.vocabulary_graph}   # they name no entity (tag labels: build-wide)
    found: dict[str, list[str]] = {}
    for g in store.named_graphs():
        if not isinstance(g, NamedNode) or g.value in own:
            continue
        for q in store.quads_for_pattern(None, None, None, g):
            for t in (q.subject, q.object):
                if isinstance(t, NamedNode):
                    eid = iris.entity_id_of(t.value)
                    if eid is not None and eid in snap.entities:
                        found.setdefault(eid, []).append(str(q))
    return {eid: _digest(sorted(lines)) for eid, lines in sorted(found.items())}


def _page_deps(view, sections: str, iris) -> set[str]:
    """Every entity id the page shows: linked entities (named, or missing), and ids in its HTML
    (entity links, entity IRIs an audit cites, prose links to ids the build does not have)."""
    deps = {link.target.id for link in (*view.direct, *view.backlinks, *view.mentions, *view.mentioned_by)
            if link.target is not None}
    entity_base = iris.base + "id/"
    for href in _HREF.findall(sections):
        href = html_lib.unescape(href)
        if href.startswith(DEFAULT_PREFIX):
            deps.add(unquote(href[len(DEFAULT_PREFIX):]))
        elif href.startswith(entity_base):
            eid = iris.entity_id_of(href)
            if eid:
                deps.add(eid)
    deps.update(html_lib.unescape(m) for m in _MISSING.findall(sections))
    return deps


def _document_deps(triples: list[Triple], iris) -> set[str]:
    out = set()
    for t in triples:
        for term in (t.subject, t.object):
            if isinstance(term, NamedNode):
                eid = iris.entity_id_of(term.value)
                if eid:
                    out.add(eid)
    return out
