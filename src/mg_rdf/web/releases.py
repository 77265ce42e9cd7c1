"""The pins of the served build: the releases page, diffs, and pages as they were at a pin.

- ``/releases``: every pin of the current build (name, commit, date, counts, and
  what changed from the pin before: added, removed, renamed, modified).
- ``/diff/{a}/{b}``: the diff between two consecutive pins, as a page or as RDF in
  the changeset vocabulary of ``ontology/mg-changes.ttl`` (``.ttl``, ``.nq``,
  ``.jsonld``, ``.nt``, or by ``Accept``). It is the document of the diff's IRI
  ``{BASE}diff/{a}/{b}``; ``/pin/{key}`` (a pin's IRI) answers 303 to its row here.
- ``request_snapshot()``: the snapshot a request asks for with ``?pin=NAME`` (a
  pin's name, key or commit prefix) — entity pages, data documents and /sparql
  use it; ``pin_args()`` keeps the pin in the links a pinned page makes.
- ``renamed_to()`` and ``entity_history()`` for entity pages: where an old id went,
  and in which pins an entity exists and what changed in it.

A build of one source has no pin index; it is then shown as its only pin.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from pyoxigraph import NamedNode

from .. import pins
from ..diff import Diff, EntityChange, MEDIA_TYPES, load as load_diff, serialize_diff, signed
from ..vocab import DCT
from . import current_snapshot
from .negotiation import HTML, JSONLD, NQUADS, NTRIPLES, TURTLE, by_key, negotiate
from .state import Snapshot, load_snapshot

bp = Blueprint("releases", __name__)

DIFF_FORMATS = (TURTLE, NQUADS, JSONLD, NTRIPLES)
PROPERTIES_SHOWN = 6     # changed properties named per entity before "…"

_lock = threading.Lock()
_snapshots: dict[tuple[str, str], Snapshot] = {}
_diffs: dict[str, "LoadedDiff"] = {}


# -- which pins there are --------------------------------------------------------------

def pin_index(snap: Snapshot) -> pins.PinIndex:
    """The pins of the snapshot's build; a build of one source is its own only pin."""
    index = pins.read_index(snap.build_dir)
    if index is not None:
        return index
    commit = snap.facts.get("commit")
    name = snap.facts.get("revision") or (commit[:7] if commit else "working tree")
    info = pins.PinInfo(name, pins.pin_key(name), commit, snap.facts.get("modified"), snap.build_dir.name, True,
                        len(snap.entities))
    return pins.PinIndex(snap.build_dir.parent, info.key, [info])


def pin_snapshot(snap: Snapshot, pin: pins.PinInfo, index: pins.PinIndex) -> Snapshot:
    """The snapshot of one pin of the build ``snap`` belongs to (opened once per build)."""
    if pin.current:
        return snap
    key = (str(snap.build_dir), pin.key)
    found = _snapshots.get(key)
    if found is None:
        with _lock:
            found = _snapshots.get(key)
            if found is None:
                found = load_snapshot(index.directory(pin), snap.iris)
                found.version = f"{snap.version}.{pin.key}"   # ETags differ by build and by pin
                found.store_root = snap.build_dir.parent.parent
                if len(_snapshots) > 16:
                    _snapshots.clear()
                _snapshots[key] = found
    return found


def request_snapshot() -> tuple[Snapshot, pins.PinInfo | None]:
    """The snapshot this request asks for (``?pin=``), and the pin when one was asked for.
    An unknown pin is a 404 that lists the pins there are."""
    snap = current_snapshot()
    name = request.args.get("pin")
    if not name:
        return snap, None
    index = pin_index(snap)
    pin = index.find(name)
    if pin is None:
        known = ", ".join(p.name for p in index.pins)
        abort(Response(render_template("error.html", title="No such pin",
                                       message=f"This store has no pin called “{name}”. Pins: {known}."), 404))
    return pin_snapshot(snap, pin, index), pin


def pin_args() -> dict[str, str]:
    """``{"pin": key}`` on a request for a pin, for url_for: links stay at that pin."""
    name = request.args.get("pin")
    if not name:
        return {}
    pin = pin_index(current_snapshot()).find(name)
    return {"pin": pin.key} if pin else {}


def pin_directory(name: str) -> tuple[pins.PinInfo, Path] | None:
    """The pin called ``name`` of the current build and its Oxigraph directory (for /sparql)."""
    snap = current_snapshot()
    index = pin_index(snap)
    pin = index.find(name)
    return None if pin is None else (pin, snap.build_dir if pin.current else index.directory(pin))


# -- diffs ---------------------------------------------------------------------------------

@dataclass
class LoadedDiff:
    diff: Diff
    by_id: dict[str, EntityChange]        # by the id at the new pin (removed: at the old one)
    by_old_id: dict[str, EntityChange]    # renamed, by the id at the old pin
    documents: dict[str, bytes] = field(default_factory=dict)   # serialised once per format

    def document(self, fmt: str, iris) -> bytes:
        if fmt not in self.documents:
            self.documents[fmt] = serialize_diff(self.diff, fmt, iris)
        return self.documents[fmt]


def loaded_diff(index: pins.PinIndex, old: pins.PinInfo, new: pins.PinInfo) -> LoadedDiff | None:
    info = index.diff(old, new)
    if info is None:
        return None
    path = index.diff_path(info)
    found = _diffs.get(str(path))
    if found is None:
        d = load_diff(path)
        found = LoadedDiff(d, {ch.id: ch for ch in d.changes}, {ch.old_id: ch for ch in d.changes if ch.old_id})
        with _lock:
            if len(_diffs) > 16:
                _diffs.clear()
            _diffs[str(path)] = found
    return found


def renamed_to(snap: Snapshot, entity_id: str) -> str | None:
    """The id that replaced ``entity_id`` (``{BASE}graph/renames`` of the served pin), if any."""
    try:
        old = NamedNode(snap.iris.entity(entity_id))
    except ValueError:
        return None
    graph = NamedNode(snap.iris.base + "graph/renames")
    for q in snap.store.quads_for_pattern(old, NamedNode(DCT + "isReplacedBy"), None, graph):
        new = snap.iris.entity_id_of(q.object.value)
        if new and new in snap.entities:
            return new
    return None


@dataclass
class PinRow:
    """One pin in an entity's history."""

    pin: pins.PinInfo
    entity_id: str            # the entity's id at this pin
    present: bool
    viewed: bool              # the pin the page shows
    status: str               # first, added, renamed, modified, unchanged, removed, absent
    change: EntityChange | None = None
    diff_url: str | None = None
    properties: list[str] | None = None    # "tag +2 −1", …


def entity_history(snap: Snapshot, entity_id: str, at: pins.PinInfo | None) -> list[PinRow]:
    """In which pins the entity exists, under which id, and what changed in it from the pin
    before (read from the build's diffs, following renames both ways)."""
    current = current_snapshot()
    index = pin_index(current)
    if len(index.pins) < 2:
        return []
    at = at or index.current
    order = index.pins
    i = order.index(next(p for p in order if p.key == at.key))
    ids = {i: entity_id}
    for j in range(i - 1, -1, -1):       # back: an entity renamed into pin j+1 had its old id at j
        d = loaded_diff(index, order[j], order[j + 1])
        ch = d.by_id.get(ids[j + 1]) if d else None
        ids[j] = ch.old_id if ch is not None and ch.kind == "renamed" and ch.old_id else ids[j + 1]
    for j in range(i + 1, len(order)):   # forward: an old id renamed at pin j
        d = loaded_diff(index, order[j - 1], order[j])
        ch = d.by_old_id.get(ids[j - 1]) if d else None
        ids[j] = ch.id if ch is not None else ids[j - 1]
    rows = []
    for j, pin in enumerate(order):
        eid = ids[j]
        present = eid in pin_snapshot(current, pin, index).entities
        row = PinRow(pin, eid, present, j == i, ("first" if j == 0 else "unchanged") if present else "absent")
        if j > 0:
            d = loaded_diff(index, order[j - 1], pin)
            ch = d.by_id.get(eid if present else ids[j - 1]) if d else None
            if d is not None:
                row.diff_url = url_for("releases.diff_page", old=order[j - 1].key, new=pin.key)
            if ch is not None and (present or ch.kind == "removed"):
                row.status, row.change = ch.kind, ch
                row.properties = property_list(ch, snap)
            elif not present and rows[-1].present:
                row.status = "removed"
        rows.append(row)
    return rows


def property_list(ch: EntityChange, snap: Snapshot, limit: int | None = PROPERTIES_SHOWN) -> list[str]:
    """What changed in an entity, property by property, in words: ``["tag +2 −1", "source note +1 −1"]``."""
    from .entity_view import term_label

    out = [f"{part + ' ' if part else ''}{term_label(snap, prop)} {signed(a, r)}"
           for part, prop, a, r in ch.properties(snap.iris)]
    if limit is not None and len(out) > limit:
        out = out[:limit] + [f"… {len(out) - limit} more"]
    return out


VALUE_SHOWN = 240        # characters of a changed literal shown on the diff page (the RDF has all)


def triple_lines(ch: EntityChange, snap: Snapshot) -> list[tuple[str, str, str, str]]:
    """The triples a change added ("+") and removed ("−") in words: (sign, part, property, value)."""
    from .entity_view import term_label

    entity = snap.iris.entity(ch.id)
    out = []
    for sign, triples in (("+", ch.added), ("−", ch.removed)):
        for t in triples:
            part = "" if t.subject.value == entity else "#" + t.subject.value.rsplit("#", 1)[-1]
            o = t.object
            if isinstance(o, NamedNode):
                value = snap.iris.entity_id_of(o.value) or term_label(snap, o.value)
            else:
                value = o.value if len(o.value) <= VALUE_SHOWN else o.value[:VALUE_SHOWN] + " …"
            out.append((sign, part, term_label(snap, t.predicate.value), value))
    return out


# -- routes -----------------------------------------------------------------------------------

@bp.get("/releases")
def releases_page() -> str:
    """Every pin of the served build and what changed between them."""
    snap = current_snapshot()
    index = pin_index(snap)
    rows = []
    for pin in index.pins:
        prev = index.previous(pin)
        info = index.diff(prev, pin) if prev else None
        rows.append({"pin": pin, "previous": prev, "diff": info,
                     "diff_url": url_for("releases.diff_page", old=prev.key, new=pin.key) if info else None})
    types = sorted({t for p in index.pins for t in p.by_type})
    return render_template("releases.html", rows=rows, types=types, index=index,
                           repository=snap.facts.get("repository", ""), title="Releases")


@bp.get("/pin/<key>")
def pin_resource(key: str) -> Response:
    """A pin's IRI: 303 to its row on the releases page."""
    pin = pin_index(current_snapshot()).find(key)
    if pin is None:
        abort(404)
    return redirect(url_for("releases.releases_page") + f"#pin-{pin.key}", 303)


@bp.get("/diff/<old>/<new>")
def diff_page(old: str, new: str) -> Response:
    """The diff between two consecutive pins: HTML, or RDF by extension or Accept."""
    snap = current_snapshot()
    index = pin_index(snap)
    stem, _, ext = new.rpartition(".")
    rep = by_key(ext, DIFF_FORMATS) if stem else None
    new_pin = index.find(stem if rep else new)
    old_pin = index.find(old)
    d = loaded_diff(index, old_pin, new_pin) if old_pin and new_pin else None
    if d is None:
        pairs = ", ".join(f"{i.old} → {i.new}" for i in index.diffs) or "none"
        return Response(render_template("error.html", title="No such diff",
                                        message=f"This build keeps the diffs between consecutive pins: {pairs}."), 404)
    negotiated = rep is None
    if negotiated:
        rep = negotiate(request.accept_mimetypes, (HTML, *DIFF_FORMATS), HTML)
        if rep is None:
            return Response("Available: text/html, " + ", ".join(r.media_type for r in DIFF_FORMATS) + "\n", 406,
                            content_type="text/plain; charset=utf-8", headers={"Vary": "Accept"})
    if rep is HTML:
        resp = Response(render_template("diff.html", d=d.diff, old=old_pin, new=new_pin, snap=snap,
                                        formats=DIFF_FORMATS, property_list=property_list,
                                        triple_lines=triple_lines,
                                        title=f"{old_pin.name} → {new_pin.name}"))
    else:
        resp = Response(d.document(rep.key, snap.iris), content_type=MEDIA_TYPES[rep.key])
        resp.headers["Access-Control-Allow-Origin"] = "*"
    if negotiated:
        resp.headers["Vary"] = "Accept"
    return resp
