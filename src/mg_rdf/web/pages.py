"""Home, browse by type and search: the pages around the entity pages.

Names, ids and types come from the snapshot's entity index (in memory, so a
name search is a Python substring test, not a SPARQL ``CONTAINS`` scan); tags
and the dataset's own description are read from the store once per build and
kept (a build never changes once written). Search and browse answer JSON too
when the client asks for ``application/json`` (or ``?format=json``).

This blueprint also serves the package's static folder (``/static/…``).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from pyoxigraph import NamedNode

from .. import schema
from ..vocab import DCT, MG, PROV, SCHEMA, SKOS, VOID
from . import current_snapshot
from .audit_view import audit_figures
from .negotiation import HTML, Representation, by_key, negotiate
from .state import EntitySummary, Snapshot

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/static")

JSON = Representation("json", "application/json")
LISTINGS = (HTML, JSON)
PAGE_SIZE = 50
MAX_QUERY_LENGTH = 200
# Folder names read well as plurals except this one.
PLURALS = {t.name: t.directory.replace("-", " ").capitalize() for t in schema.TYPES.values()} | {
    "person": "People"}

_T = TypeVar("_T")
_cache: dict[tuple[str, str], Any] = {}
_cache_lock = threading.Lock()


def per_build(snap: Snapshot, name: str, compute: Callable[[], _T]) -> _T:
    """``compute()`` once per build: a build never changes after it is written."""
    key = (str(snap.build_dir), name)
    if key in _cache:
        return _cache[key]
    value = compute()
    with _cache_lock:
        if len(_cache) > 64:   # a server sees a handful of builds; forget old ones wholesale
            _cache.clear()
        _cache[key] = value
    return value


def entity_href(entity_id: str) -> str:
    """Where an entity lives on this site: /id/{id} (answered with a 303 to its page)."""
    return f"{request.script_root}/id/{quote(entity_id, safe='')}"


@bp.context_processor
def _page_helpers() -> dict[str, Any]:
    return {"entity_href": entity_href, "plurals": PLURALS, "types": schema.TYPES}


# --- what the dataset says about itself -------------------------------------

@dataclass
class DatasetSummary:
    title: str = "Movement Graph"
    description: str = ""
    attribution: str = "Make AI Good Movement Graph. Licensed CC BY 4.0."
    license: str = "https://creativecommons.org/licenses/by/4.0/"
    repository: str = ""
    commit: str = ""
    revision: str = ""
    tree_url: str = ""
    modified: str = ""
    triples: int | None = None
    entities: int | None = None
    by_type: dict[str, int] = field(default_factory=dict)   # type name -> entity count

    @property
    def commit_url(self) -> str:
        """A link to the corpus at the commit, only when the repository is public."""
        if self.tree_url:
            return self.tree_url
        if self.commit and self.repository.startswith(("http://", "https://")):
            return f"{self.repository.rstrip('/')}/tree/{self.commit}"
        return ""


_DATASET_FIELDS = {DCT + "title": "title", DCT + "description": "description",
                   SCHEMA + "creditText": "attribution", DCT + "license": "license",
                   DCT + "source": "repository", MG + "corpusCommit": "commit",
                   MG + "corpusRevision": "revision", PROV + "wasDerivedFrom": "tree_url",
                   DCT + "modified": "modified"}
_CLASS_TO_TYPE = {MG + t.cls: t.name for t in schema.TYPES.values()}


def dataset_summary(snap: Snapshot) -> DatasetSummary:
    """Title, licence, attribution, commit and counts from the {BASE}graph/dataset graph."""
    return per_build(snap, "dataset", lambda: _read_dataset(snap))


def _read_dataset(snap: Snapshot) -> DatasetSummary:
    d, g = snap.iris.dataset, snap.iris.dataset_graph
    out = DatasetSummary()
    for row in snap.store.query(f"SELECT ?p ?o WHERE {{ GRAPH <{g}> {{ <{d}> ?p ?o }} }}"):
        p, o = row["p"].value, row["o"].value
        if p in _DATASET_FIELDS:
            setattr(out, _DATASET_FIELDS[p], o)
        elif p == VOID + "triples":
            out.triples = int(o)
        elif p == VOID + "entities":
            out.entities = int(o)
    q = f"""SELECT ?c ?n WHERE {{ GRAPH <{g}> {{ <{d}> <{VOID}classPartition> ?part .
            ?part <{VOID}class> ?c ; <{VOID}entities> ?n }} }}"""
    for row in snap.store.query(q):
        type_name = _CLASS_TO_TYPE.get(row["c"].value)
        if type_name:
            out.by_type[type_name] = int(row["n"].value)
    if not out.by_type:   # a store built before class partitions were recorded
        out.by_type = dict(Counter(e.type for e in snap.entities.values()))
    return out


# --- tags ---------------------------------------------------------------------

@dataclass(frozen=True)
class Tag:
    iri: str
    label: str
    count: int      # entities carrying it

    @property
    def slug(self) -> str:
        return self.iri.rsplit("/", 1)[-1]


def all_tags(snap: Snapshot) -> dict[str, Tag]:
    """Every tag of the build by IRI, with its label and how many entities carry it."""
    return per_build(snap, "tags", lambda: _read_tags(snap))


def _read_tags(snap: Snapshot) -> dict[str, Tag]:
    # Counted by the store (a few times faster than gathering the ~16k tag quads in Python): every
    # serving process reads this once per build, before its first request.
    counts = snap.store.query(f"""SELECT ?tag (COUNT(DISTINCT ?s) AS ?n) WHERE {{
        {{ ?s <{MG}tag> ?tag }} UNION {{ GRAPH ?g {{ ?s <{MG}tag> ?tag }} }} }} GROUP BY ?tag""")
    labels = {q.subject.value: q.object.value for q in snap.store.quads_for_pattern(
        None, NamedNode(SKOS + "prefLabel"), None, NamedNode(snap.iris.vocabulary_graph))}
    return {row[0].value: Tag(row[0].value, labels.get(row[0].value, row[0].value.rsplit("/", 1)[-1]),
                              int(row[1].value))
            for row in counts if row[0] is not None}


def tagged_entities(snap: Snapshot, tag_iri: str) -> set[str]:
    """Ids of the entities that carry the tag ``tag_iri`` (``?e mg:tag <tag>``)."""
    ids = set()
    for quad in snap.store.quads_for_pattern(None, NamedNode(MG + "tag"), NamedNode(tag_iri), None):
        eid = snap.iris.entity_id_of(quad.subject.value)
        if eid in snap.entities:
            ids.add(eid)
    return ids


# --- listing helpers --------------------------------------------------------

class Refusal(Exception):
    """A request this page cannot answer as asked (bad parameter, unknown type)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(Refusal)
def _refused(e: Refusal):
    if _representation(strict=False) is JSON:
        return jsonify({"error": e.message}), e.status
    title = "Not found" if e.status == 404 else "Cannot answer this request"
    return render_template("error.html", title=title, message=e.message), e.status


def _representation(strict: bool = True) -> Representation:
    fmt = request.args.get("format")
    chosen = by_key(fmt, LISTINGS) if fmt else negotiate(request.accept_mimetypes, LISTINGS, HTML)
    if chosen is None and strict:
        raise Refusal(406, "This page is available as text/html or application/json.")
    return chosen or HTML


@dataclass
class Page:
    items: list[EntitySummary]
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.total else 0


def paginate(entities: list[EntitySummary], size: int = PAGE_SIZE) -> Page:
    """The page of ``entities`` named by ``?page=N`` (1 when absent)."""
    raw = request.args.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise Refusal(400, f"page must be a whole number from 1 (got {raw[:20]!r}).")
    number = int(raw)
    page = Page([], number, len(entities), size)
    if number > page.pages:
        raise Refusal(404, f"There is no page {number}: the list has {page.pages} page(s).")
    page.items = entities[(number - 1) * size: number * size]
    return page


def _page_url(number: int | None) -> str | None:
    """This listing's URL at page ``number``, keeping the other parameters."""
    if number is None:
        return None
    args = {k: v for k, v in request.args.items() if k != "page"}
    if number > 1:
        args["page"] = str(number)
    return url_for(request.endpoint or "pages.search", **(request.view_args or {}), **args)


def _links(page: Page) -> dict[str, str | None]:
    return {"prev": _page_url(page.number - 1 if page.number > 1 else None),
            "next": _page_url(page.number + 1 if page.number < page.pages else None)}


def _as_json(snap: Snapshot, page: Page, extra: dict[str, Any]) -> Response:
    root = request.host_url.rstrip("/")
    links = _links(page)
    body = {**extra, "total": page.total, "page": page.number, "pages": page.pages, "page_size": page.size,
            "prev": root + links["prev"] if links["prev"] else None,
            "next": root + links["next"] if links["next"] else None,
            "results": [{"id": e.id, "type": e.type, "name": e.name, "iri": snap.iris.entity(e.id),
                         "page": root + entity_href(e.id)} for e in page.items]}
    return jsonify(body)


def _vary(response: Response) -> Response:
    response.vary.add("Accept")
    return response


def by_name(entities: list[EntitySummary]) -> list[EntitySummary]:
    return sorted(entities, key=lambda e: (e.name.casefold(), e.id))


# --- routes -------------------------------------------------------------------

@bp.get("/")
def home():
    snap = current_snapshot()
    summary = dataset_summary(snap)
    tags = sorted(all_tags(snap).values(), key=lambda t: (-t.count, t.label))
    return render_template("home.html", summary=summary, top_tags=tags[:30], tag_total=len(tags),
                           entity_total=summary.entities or len(snap.entities), audits=audit_figures(snap))


@bp.get("/browse")
def browse():
    snap = current_snapshot()
    counts = Counter(e.type for e in snap.entities.values())
    if _representation() is JSON:
        return _vary(jsonify({"types": [
            {"type": t, "label": PLURALS[t], "count": counts.get(t, 0),
             "url": request.host_url.rstrip("/") + url_for("pages.browse_type", type_name=t)}
            for t in schema.TYPES]}))
    return _vary(Response(render_template("browse.html", counts=counts, total=sum(counts.values()))))


@bp.get("/browse/<type_name>")
def browse_type(type_name: str):
    etype = schema.TYPES.get(type_name)
    if etype is None:
        by_folder = schema.BY_DIRECTORY.get(type_name)   # /browse/campaigns means /browse/campaign
        if by_folder is not None:
            return redirect(url_for("pages.browse_type", type_name=by_folder.name, **request.args), 301)
        raise Refusal(404, f"There is no entity type {type_name!r}. Types: {', '.join(schema.TYPES)}.")
    snap = current_snapshot()
    page = paginate(by_name([e for e in snap.entities.values() if e.type == etype.name]))
    if _representation() is JSON:
        return _vary(_as_json(snap, page, {"type": etype.name}))
    return _vary(Response(render_template("browse.html", etype=etype, page=page, links=_links(page))))


@bp.get("/search")
def search():
    snap = current_snapshot()
    q = request.args.get("q", "").strip()
    tag_text = request.args.get("tag", "").strip()
    type_name = request.args.get("type", "").strip()
    if len(q) > MAX_QUERY_LENGTH or len(tag_text) > MAX_QUERY_LENGTH:
        raise Refusal(400, f"Search for at most {MAX_QUERY_LENGTH} characters.")
    if type_name and type_name not in schema.TYPES:
        raise Refusal(400, f"Unknown type {type_name!r}. Types: {', '.join(schema.TYPES)}.")
    tag = _tag_named(snap, tag_text) if tag_text else None
    found = find_entities(snap, q, tag.iri if tag else None, type_name or None) if (q or tag) else []
    page = paginate(found)
    matching_tags = _tags_matching(snap, q) if q and not tag_text else []
    if _representation() is JSON:
        extra: dict[str, Any] = {"q": q or None, "type": type_name or None,
                                 "tag": {"label": tag.label, "iri": tag.iri} if tag else None}
        if q and not tag_text:
            extra["matching_tags"] = [{"label": t.label, "iri": t.iri, "count": t.count} for t in matching_tags]
        return _vary(_as_json(snap, page, extra))
    return _vary(Response(render_template(
        "search.html", q=q, tag=tag, tag_text=tag_text, type_name=type_name, page=page,
        links=_links(page), matching_tags=matching_tags, searched=bool(q or tag_text))))


def _tag_named(snap: Snapshot, text: str) -> Tag:
    iri = snap.iris.tag(text)
    known = all_tags(snap).get(iri)
    return known or Tag(iri, text, 0)


def _tags_matching(snap: Snapshot, q: str, limit: int = 30) -> list[Tag]:
    needle = q.casefold()
    hits = [t for t in all_tags(snap).values() if needle in t.label.casefold()]
    return sorted(hits, key=lambda t: (t.label.casefold() != needle, -t.count, t.label))[:limit]


def find_entities(snap: Snapshot, q: str = "", tag_iri: str | None = None,
                  type_name: str | None = None) -> list[EntitySummary]:
    """Entities whose name or id contains ``q`` (ignoring case), carrying ``tag_iri``,
    of ``type_name``: names that start with ``q`` first, then by name."""
    pool = list(snap.entities.values())
    if tag_iri is not None:
        ids = tagged_entities(snap, tag_iri)
        pool = [e for e in pool if e.id in ids]
    if type_name:
        pool = [e for e in pool if e.type == type_name]
    if not q:
        return by_name(pool)
    needle = q.casefold()
    hits = [e for e in pool if needle in e.name.casefold() or needle in e.id.casefold()]
    return sorted(hits, key=lambda e: (not e.name.casefold().startswith(needle), e.name.casefold(), e.id))
