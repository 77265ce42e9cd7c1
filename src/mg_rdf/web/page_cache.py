"""Entity pages and data documents kept once made: ``<database>/mg-pages-cache.sqlite``.

A build never changes once written, so what a request makes of one entity from the
store — the page's sections In focus … Provenance, its head and schema.org JSON-LD, the
data document's triples — is the same for every later request of that build. The first
serving process to make one writes it here; every process of the server (and the next
server on the same build) then reads it instead of making it again: ~1-5 ms instead of
~10-60 ms for the largest pages, and a process forked a moment ago does not start cold.

``page_data`` is the build-time form of the same idea (``mg-rdf build --pages``: every
entity, before the swap); this file fills itself as pages are asked for, for any link
form (pinned pages, an app below the root), with nothing to do at build time.

- One SQLite file per database (``builds/<id>/`` or a pin's ``builds/<id>.pins/<key>/``),
  next to the Oxigraph files: RocksDB checkpoints (incremental builds) copy only their
  own files, and removing an old build removes its cache with it.
- Rows are keyed by the code fingerprint (``page_data.code_fingerprint``: templates and
  page code), so a server of another version neither uses nor spoils them.
- Failure is never an error: a store on a read-only disk, a locked file or a damaged one
  only means pages are made from the store, as without the cache. Writes wait at most
  ``BUSY_MS`` for another process, then skip.
- Only local Oxigraph stores: a remote store's pages are made from it every time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import zlib
from pathlib import Path

from pyoxigraph import Store, Triple

from .page_data import (PageHead, StoredPage, code_fingerprint, document_columns, document_from_columns,
                        page_columns, page_from_columns)

FILE = "mg-pages-cache.sqlite"
BUSY_MS = 50
_OPEN_FILES = 16

_SCHEMA = """PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS pages (code TEXT NOT NULL, id TEXT NOT NULL, prefix TEXT NOT NULL, suffix TEXT NOT NULL,
  head TEXT NOT NULL, schema_org TEXT NOT NULL, sections BLOB NOT NULL, PRIMARY KEY (code, id, prefix, suffix))
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (code TEXT NOT NULL, id TEXT NOT NULL, nt BLOB NOT NULL, prefixes TEXT NOT NULL,
  PRIMARY KEY (code, id)) WITHOUT ROWID;"""


class _File:
    """One database's cache file, opened by this process (a connection never crosses a fork)."""

    def __init__(self, path: Path):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(str(path), timeout=BUSY_MS / 1000, isolation_level=None,
                                    check_same_thread=False)
        self.conn.executescript(_SCHEMA)

    def one(self, sql: str, args: tuple) -> tuple | None:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    def write(self, sql: str, args: tuple) -> None:
        with self.lock:
            self.conn.execute(sql, args)


_files: dict[str, _File | None] = {}
_lock = threading.Lock()


def _file(snap) -> _File | None:
    if not isinstance(snap.store, Store):
        return None
    path = snap.build_dir / FILE
    key = str(path)
    f = _files.get(key)
    if f is not None and f.pid == os.getpid():
        return f
    if f is None and key in _files:
        return None   # this process could not open it: pages come from the store
    with _lock:
        if len(_files) >= _OPEN_FILES:   # a server sees a build, its pins and the one before
            _files.clear()
        try:
            f = _File(path) if snap.build_dir.is_dir() else None
        except (sqlite3.Error, OSError):
            f = None
        _files[key] = f
        return f


def _disable(snap) -> None:
    _files[str(snap.build_dir / FILE)] = None


def page(snap, entity_id: str, prefix: str, suffix: str) -> StoredPage | None:
    """The page of ``entity_id`` as made earlier for these links, or None."""
    return _read(snap, "SELECT head, schema_org, sections FROM pages WHERE code = ? AND id = ? AND prefix = ? "
                       "AND suffix = ?", (code_fingerprint(), entity_id, prefix, suffix), page_from_columns)


def keep_page(snap, entity_id: str, prefix: str, suffix: str, head: PageHead, schema_org: dict,
              sections: str) -> None:
    """Keep what a request made of a page (``schema_org`` before its per-request ``url`` is set)."""
    f = _file(snap)
    if f is None:
        return
    try:
        f.write("INSERT OR IGNORE INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (code_fingerprint(), entity_id, prefix, suffix, *page_columns(head, schema_org, sections)))
    except sqlite3.OperationalError:
        pass   # busy (another process is writing): the next request keeps it
    except sqlite3.Error:
        _disable(snap)


def document(snap, entity_id: str) -> tuple[list[Triple], dict[str, str]] | None:
    """The data document of ``entity_id`` as made earlier: its triples in order and its prefixes."""
    return _read(snap, "SELECT nt, prefixes FROM documents WHERE code = ? AND id = ?",
                 (code_fingerprint(), entity_id), document_from_columns)


def _read(snap, sql: str, args: tuple, decode):
    """``decode`` of the row ``sql`` finds, or None: no file, no row, or a row that cannot be read
    (which stops the file being used in this process)."""
    f = _file(snap)
    if f is None:
        return None
    try:
        row = f.one(sql, args)
        return None if row is None else decode(row)
    except (sqlite3.Error, zlib.error, ValueError, TypeError, SyntaxError):
        _disable(snap)
        return None


def keep_document(snap, entity_id: str, triples: list[Triple], prefixes: dict[str, str]) -> None:
    f = _file(snap)
    if f is None:
        return
    try:
        f.write("INSERT OR IGNORE INTO documents VALUES (?, ?, ?, ?)",
                (code_fingerprint(), entity_id, *document_columns(triples, prefixes)))
    except sqlite3.OperationalError:
        pass
    except sqlite3.Error:
        _disable(snap)

