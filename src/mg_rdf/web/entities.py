"""Entity IRIs that dereference, the entity page, and the entity's data documents.

The server answers for its own host: ``/id/x`` *is* the resource ``{BASE}id/x``.

- ``/id/{id}``: the thing itself. ``303 See Other`` to one of the documents
  below, chosen by ``Accept`` (the HTML page when nothing is said), with
  ``Vary: Accept`` and ``Link`` headers to every alternate.
- ``/page/{id}``: the HTML page, for people.
- ``/data/{id}.ttl``, ``.jsonld``, ``.nt``, ``.rdf``: the data document in one
  RDF format (the extension wins over ``Accept``).
- ``/data/{id}.md``: the entity file's Markdown source, exactly as the build read
  it (each build keeps its sources beside the store, outside the RDF).
- ``/data/{id}``: the data document in the RDF format ``Accept`` asks for
  (200 with ``Content-Location``; 406 when none fits).

Every route takes ``?pin=NAME`` (a pin of a several-pin build, see ``releases``):
the entity as it was at that pin, with the pin kept in every link and redirect.
An id that a later pin renamed answers 301 to its new id (``{BASE}graph/renames``).

What a data document holds is written down in ``document_triples`` below, and
the page shows the same as a SPARQL CONSTRUCT (``document_query``).
Pages and documents carry an ``ETag`` (build, entity, format, code version) and
``Last-Modified`` (the build time) and answer conditional requests with 304.
Only ids that are keys of the snapshot's entity table go any further than the
404, so nothing from a URL is ever written into a query.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from urllib.parse import quote

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup
from pyoxigraph import NamedNode, Triple, serialize
from werkzeug.http import is_resource_modified

from .. import __version__
from . import page_cache, page_data
from ..vocab import MG, PREFIXES, RDF, RDFS, SKOS, DataIris
from .entity_view import EntityView, gather, grouped
from .negotiation import (HTML, MARKDOWN, MAX_ACCEPT_LENGTH, OXIGRAPH_FORMAT, RDF_DOCUMENTS, TURTLE,
                          Representation, by_key, negotiate)
from .neighbourhood import layout
from .releases import entity_history, pin_args, renamed_to, request_snapshot
from .state import Snapshot

bp = Blueprint("entities", __name__)

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
# schema.org types for the page's embedded JSON-LD (closest type that holds for every entry).
SCHEMA_ORG_TYPE = {"organization": "Organization", "local-group": "Organization", "campaign": "Project",
                   "event": "Event", "strategy": "Thing", "message": "CreativeWork", "funder": "Organization",
                   "person": "Person", "voice": "Person", "publication": "CreativeWork"}
SCHEMA_ORG_DATES = {"start date": "startDate", "end date": "endDate", "date": "startDate",
                    "founded": "foundingDate", "publication date": "datePublished"}
# (schema.org type or "*", mg relation) -> schema.org property, only where the meaning is the same.
SCHEMA_ORG_LINKS = {("Project", "leadOrganization"): "member", ("Project", "participatingOrganization"): "member",
                    ("Event", "participatingOrganization"): "attendee", ("Event", "participatingPerson"): "attendee",
                    ("*", "event"): "event", ("*", "funder"): "funder", ("*", "parentOrganization"): "parentOrganization",
                    ("*", "affiliatedWith"): "affiliation", ("*", "author"): "author", ("*", "publisher"): "publisher",
                    ("CreativeWork", "mentions"): "mentions"}
RELATED_LIMIT = 10   # linked entities named per property in the JSON-LD


# -- looking up and answering ----------------------------------------------------

def _known(snap: Snapshot, raw_id: str) -> str | None:
    """The entity table's key for the id in a URL, or None."""
    if raw_id in snap.entities:
        return raw_id
    key = snap.iris.entity_id_of(snap.iris.entity(raw_id))   # an id written with percent-encoding
    return key if key in snap.entities else None


def _not_found(raw_id: str, html: bool = True) -> Response:
    message = f"No entity has the id “{raw_id}” in this build."
    if html:
        return Response(render_template("error.html", title="Not found", message=message), 404)
    return Response(message + "\n", 404, content_type="text/plain; charset=utf-8")


def _accept_ok() -> None:
    if len(request.headers.get("Accept", "")) > MAX_ACCEPT_LENGTH:
        abort(Response("Accept header too long\n", 400, content_type="text/plain; charset=utf-8"))


def _not_acceptable(offers: tuple[Representation, ...]) -> Response:
    listed = "\n".join(f"  {r.media_type}" for r in offers)
    return Response(f"None of the formats in your Accept header is available here. Available:\n{listed}\n",
                    406, headers={"Vary": "Accept"}, content_type="text/plain; charset=utf-8")


def _validators(snap: Snapshot, entity_id: str, key: str) -> tuple[str, datetime]:
    tag = hashlib.sha256(f"{snap.version}\0{entity_id}\0{key}\0{__version__}".encode()).hexdigest()[:32]
    return tag, datetime.fromtimestamp(int(snap.built_at), tz=timezone.utc)


def _not_modified(etag: str, modified: datetime) -> bool:
    return not is_resource_modified(request.environ, etag=etag, last_modified=modified)


def _finish(resp: Response, etag: str, modified: datetime, links: str) -> Response:
    resp.set_etag(etag)
    resp.last_modified = modified
    resp.headers["Link"] = links
    return resp


def _document_url(entity_id: str, rep: Representation) -> str:
    if rep is HTML:
        return url_for("entities.page", entity_id=entity_id, **pin_args())
    return url_for("entities.document", name=f"{entity_id}.{rep.key}", **pin_args())


def _pinned(pin) -> bool:
    """A request for a pin other than the current one (renames are stated in the current pin)."""
    return pin is not None and not pin.current


def _moved(snap: Snapshot, raw_id: str, pinned: bool, endpoint: str, ext: str | None = None) -> Response | None:
    """301 to the new id of an entity a later pin renamed ({BASE}graph/renames of the served pin)."""
    new = None if pinned else renamed_to(snap, raw_id)
    if new is None:
        return None
    values = {"name": f"{new}.{ext}" if ext else new} if endpoint == "entities.document" else {"entity_id": new}
    return redirect(url_for(endpoint, **values, **pin_args()), 301)


def _alternates(snap: Snapshot, entity_id: str) -> list[tuple[str, Representation]]:
    reps = [HTML, *RDF_DOCUMENTS] + ([MARKDOWN] if _markdown_source(snap, entity_id) is not None else [])
    return [(_document_url(entity_id, r), r) for r in reps]


def _link_header(alternates: list[tuple[str, Representation]]) -> str:
    links = [f'<{url}>; rel="alternate"; type="{rep.media_type}"' for url, rep in alternates]
    return ", ".join([*links, f'<{CC_BY}>; rel="license"'])


def _markdown_source(snap: Snapshot, entity_id: str) -> str | None:
    """The entity file's exact text, as the build read it (kept beside the store)."""
    data = snap.source_text(entity_id)
    return None if data is None else data.decode("utf-8", errors="replace")


# -- the data document -------------------------------------------------------------

def document_triples(snap: Snapshot, entity_id: str) -> list[Triple]:
    """What ``/data/{id}`` holds (``document_query`` says the same in SPARQL):

    1. every triple of the entity's own graph: what its file states, the reverse
       of its references, its text mentions and the graph's provenance;
    2. every triple of other graphs with the entity as subject or object (what
       other files say about it, and the reverse links derived from them);
    3. ``rdf:type`` and ``rdfs:label`` of every entity linked in 1–2, from that
       entity's own graph, so a client can show names without another request;
    4. ``skos:prefLabel`` of the entity's tags.
    """
    store, iris = snap.store, snap.iris
    e, g = NamedNode(iris.entity(entity_id)), NamedNode(iris.graph(entity_id))
    out: set[Triple] = set()
    linked: set[str] = set()
    for q in store.quads_for_pattern(None, None, None, g):
        out.add(q.triple)
        if q.subject == e or q.object == e:
            linked.update(t.value for t in (q.subject, q.object) if isinstance(t, NamedNode))
    for pattern in ((e, None, None, None), (None, None, e, None)):
        for q in store.quads_for_pattern(*pattern):
            out.add(q.triple)
            linked.update(t.value for t in (q.subject, q.object) if isinstance(t, NamedNode))
    wanted = (NamedNode(RDF + "type"), NamedNode(RDFS + "label"))
    for iri in sorted(linked):
        other = iris.entity_id_of(iri)
        if other is None or other == entity_id or other not in snap.entities:
            continue
        home = NamedNode(iris.graph(other))
        for p in wanted:
            out.update(q.triple for q in store.quads_for_pattern(NamedNode(iri), p, None, home))
    vocab, pref = NamedNode(iris.vocabulary_graph), NamedNode(SKOS + "prefLabel")
    for q in store.quads_for_pattern(e, NamedNode(MG + "tag"), None, g):
        out.update(t.triple for t in store.quads_for_pattern(q.object, pref, None, vocab))
    # The entity first, then its parts, then the rest: Turtle groups by subject in this order.
    return sorted(out, key=lambda t: (t.subject != e, not t.subject.value.startswith(e.value),
                                      str(t.subject), str(t.predicate), str(t.object)))


def _prefixes_used(snap: Snapshot, triples: list[Triple]) -> dict[str, str]:
    """The well-known prefixes and the data's own namespaces, as far as ``triples`` use them."""
    known = {**PREFIXES, "id": snap.iris.base + "id/", "graph": snap.iris.base + "graph/",
             "tag": snap.iris.tag_scheme}
    iris = {t.value for tr in triples for t in (tr.subject, tr.predicate, tr.object) if isinstance(t, NamedNode)}
    iris |= {tr.object.datatype.value for tr in triples if not isinstance(tr.object, NamedNode)
             and getattr(tr.object, "datatype", None) is not None}
    return {p: ns for p, ns in known.items() if any(i.startswith(ns) for i in iris)}


def document_query(snap: Snapshot, entity_id: str) -> str:
    """A SPARQL CONSTRUCT giving exactly the triples of ``document_triples``.

    The entity's IRI is written into each branch: Oxigraph does not push an outer
    VALUES into UNION branches (MEASURED.md), so this form stays fast.
    """
    e, g = f"<{snap.iris.entity(entity_id)}>", f"<{snap.iris.graph(entity_id)}>"
    vocab = f"<{snap.iris.vocabulary_graph}>"
    return f"""PREFIX mg: <{MG}>
PREFIX rdf: <{RDF}>
PREFIX rdfs: <{RDFS}>
PREFIX skos: <{SKOS}>
# The data behind the page of {entity_id}: its own graph, what other files
# state about it, and the names and types of the entities it is linked with.
CONSTRUCT {{ ?s ?p ?o }}
WHERE {{
  {{ GRAPH {g} {{ ?s ?p ?o }} }}
  UNION {{ GRAPH ?g {{ {e} ?p ?o }} BIND({e} AS ?s) }}
  UNION {{ GRAPH ?g {{ ?s ?p {e} }} BIND({e} AS ?o) }}
  UNION {{
    {{ GRAPH ?g {{ {e} ?link ?s }} }} UNION {{ GRAPH ?g {{ ?s ?link {e} }} }}
    GRAPH ?home {{ ?home mg:describes ?s . ?s ?p ?o FILTER(?p IN (rdf:type, rdfs:label)) }}
  }}
  UNION {{ GRAPH {g} {{ {e} mg:tag ?s }} GRAPH {vocab} {{ ?s skos:prefLabel ?o }} BIND(skos:prefLabel AS ?p) }}
}}
"""


# -- routes -------------------------------------------------------------------------

@bp.get("/id/<entity_id>")
def dereference(entity_id: str) -> Response:
    """303 See Other to the page or a data document, by Accept."""
    _accept_ok()
    snap, pin = request_snapshot()
    key = _known(snap, entity_id)
    if key is None:
        moved = _moved(snap, entity_id, _pinned(pin), "entities.dereference")
        if moved is not None:
            return moved
        resp = _not_found(entity_id, html=negotiate(request.accept_mimetypes, (HTML, *RDF_DOCUMENTS)) is HTML)
        resp.headers["Vary"] = "Accept"
        return resp
    alternates = _alternates(snap, key)
    offers = tuple(rep for _, rep in alternates)
    rep = negotiate(request.accept_mimetypes, offers, HTML)
    if rep is None:
        return _not_acceptable(offers)
    resp = Response(status=303, headers={"Location": _document_url(key, rep), "Vary": "Accept",
                                         "Link": _link_header(alternates),
                                         "Access-Control-Allow-Origin": "*"})
    return resp


@bp.get("/data/<name>")
def document(name: str) -> Response:
    """A data document: by extension, or by Accept when the URL has none."""
    _accept_ok()
    snap, pin = request_snapshot()
    stem, _, ext = name.rpartition(".")
    rep = by_key(ext, (*RDF_DOCUMENTS, MARKDOWN)) if stem else None
    entity_id = stem if rep is not None else name
    key = _known(snap, entity_id)
    if key is None:
        return _moved(snap, entity_id, _pinned(pin), "entities.document", rep.key if rep else None) or \
            _not_found(entity_id, html=False)
    negotiated = rep is None
    if negotiated:
        rep = negotiate(request.accept_mimetypes, RDF_DOCUMENTS, TURTLE)
        if rep is None:
            return _not_acceptable(RDF_DOCUMENTS)
    etag, modified = _validators(snap, key, rep.key)
    alternates = _alternates(snap, key)
    headers = {"Access-Control-Allow-Origin": "*"}
    if negotiated:
        headers.update({"Vary": "Accept", "Content-Location": _document_url(key, rep)})
    if _not_modified(etag, modified):
        return _finish(Response(status=304, headers=headers), etag, modified, _link_header(alternates))
    if rep is MARKDOWN:
        text = _markdown_source(snap, key)
        if text is None:
            return Response(f"The Markdown source of {key} is not kept by this build.\n", 404,
                            content_type="text/plain; charset=utf-8")
        body = text.encode()
    else:
        # precomputed at build time (build --pages), or kept when a request of this build made it
        stored = page_data.document(snap, key) or page_cache.document(snap, key)
        if stored is None:
            triples = document_triples(snap, key)
            stored = (triples, _prefixes_used(snap, triples))
            page_cache.keep_document(snap, key, *stored)
        found, prefixes = stored
        body = serialize(found, format=OXIGRAPH_FORMAT[rep.key], prefixes=prefixes)
    resp = Response(body, content_type=rep.content_type, headers=headers)
    return _finish(resp, etag, modified, _link_header(alternates))


@bp.get("/page/<entity_id>")
def page(entity_id: str) -> Response:
    """The HTML page of an entity."""
    snap, pin = request_snapshot()
    key = _known(snap, entity_id)
    if key is None:
        return _moved(snap, entity_id, _pinned(pin), "entities.page") or _not_found(entity_id)
    etag, modified = _validators(snap, key, HTML.key)
    alternates = _alternates(snap, key)
    if _not_modified(etag, modified):
        return _finish(Response(status=304), etag, modified, _link_header(alternates))
    prefix = _page_prefix()
    suffix = "?pin=" + quote(pin.key, safe="") if pin else ""   # links of a pinned page stay at its pin
    # The sections In focus … Provenance and the JSON-LD: made at build time for the default
    # links (build --pages: no pin, the app at the root), or kept by the first request of this
    # build that made them for these links (page_cache); else made here from the store.
    stored = page_data.page(snap, key) if not suffix and prefix == page_data.DEFAULT_PREFIX else None
    stored = stored or page_cache.page(snap, key, prefix, suffix)
    if stored is not None:
        head, data, sections = stored.head, stored.schema_org, Markup(stored.sections)
    else:
        view = gather(snap, key, prefix, suffix)
        head, data = page_head(view), schema_org(view, "", snap.iris)
        sections = Markup(render_sections(snap, view, prefix, suffix, pin))
        page_cache.keep_page(snap, key, prefix, suffix, head, data, str(sections))
    data["url"] = url_for("entities.page", entity_id=key, _external=True, **pin_args())
    query = document_query(snap, key)
    html = render_template(
        "entity.html", view=head, sections=sections, page_prefix=prefix, alternates=alternates,
        page_suffix=suffix, pin=pin, pin_args=pin_args(), history=entity_history(snap, key, pin),
        json_ld=script_json(data), sparql=query, sparql_url=url_for("query_page.query", query=query))
    resp = Response(html, content_type=HTML.content_type)
    return _finish(resp, etag, modified, _link_header(alternates))


# -- helpers for the page --------------------------------------------------------------

def page_head(view: EntityView) -> page_data.PageHead:
    """What entity.html itself shows of the entity (the sections get the whole EntityView)."""
    return page_data.PageHead(view.id, view.iri, view.name, view.type, view.type_label)


def render_sections(snap: Snapshot, view: EntityView, prefix: str, suffix: str, pin) -> str:
    """The page's sections In focus … Provenance (_entity_sections.html) as HTML: what
    ``page_data`` stores at build time, and what a request renders when it has none."""
    picture = layout(view.ref, view.neighbours, view.mentioned)
    return render_template("_entity_sections.html", view=view, picture=picture, page_prefix=prefix,
                           page_suffix=suffix, pin=pin, grouped=grouped, repository=_repository_name(snap),
                           attribution=snap.facts.get("attribution", ""))


def _page_prefix() -> str:
    """The URL of the page of entity ``x`` is this + ``x`` (one url_for per page, not one per link)."""
    return url_for("entities.page", entity_id="~").removesuffix("~")


def _repository_name(snap: Snapshot) -> str:
    repo = snap.facts.get("repository", "").rstrip("/")
    return repo.rsplit("/", 1)[-1] if repo else "the corpus"


def schema_org(view: EntityView, page_url: str, iris: DataIris) -> dict:
    """The page's schema.org description (JSON-LD): type, name, identifiers, dates and
    the linked entities whose relation has a schema.org property of the same meaning."""
    schema_type = SCHEMA_ORG_TYPE.get(view.type, "Thing")
    data: dict = {"@context": "https://schema.org", "@type": schema_type, "@id": view.iri, "name": view.name,
                  "url": page_url, "identifier": view.id}   # page_url: "" at build time, set per request
    if view.same_as:
        data["sameAs"] = view.same_as
    for label, value in view.dates:
        prop = SCHEMA_ORG_DATES.get(label)
        if prop and value != "ongoing" and prop not in data:
            data[prop] = value
    if view.tags:
        data["keywords"] = [t.label for t in view.tags]
    for link in view.direct + (view.mentions if schema_type == "CreativeWork" else []):
        prop = SCHEMA_ORG_LINKS.get((schema_type, link.relation)) or SCHEMA_ORG_LINKS.get(("*", link.relation))
        if prop is None or link.target is None or not link.target.exists:
            continue
        values = data.setdefault(prop, [])
        node = {"@id": iris.entity(link.target.id), "name": link.target.name}
        if len(values) < RELATED_LIMIT and node not in values:
            values.append(node)
    data["isPartOf"] = {"@type": "Dataset", "name": "Movement Graph", "license": CC_BY}
    return data


def script_json(data: dict) -> Markup:
    """JSON for a <script> element: <, > and & escaped so no text can close the element."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=False, indent=1)
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))
