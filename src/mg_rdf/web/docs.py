"""The ontology and the shapes, for people and for machines.

``/ontology`` is what the ontology IRI (https://w3id.org/movement-graph/ontology)
resolves to: an HTML page with one anchor per term, named by its local name, so
``…/ontology#leadOrganization`` lands on the term; Turtle, JSON-LD, N-Triples or
RDF/XML by ``Accept`` or by extension (``/ontology.ttl``). ``/shapes`` does the
same for the SHACL shapes. Both are read from the graphs the build loaded into
the store (so the page always documents the vocabulary the data was built
with), falling back to the files in the source tree for an older store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, url_for
from pyoxigraph import BlankNode, Literal, NamedNode, Quad, RdfFormat, parse, serialize

from ..config import ONTOLOGY_FILES, SHAPES_FILES
from ..vocab import MG, MGSH, ONTOLOGY_IRI, OWL, PREFIXES, RDF, RDFS, SH, SHAPES_IRI, SKOS
from . import current_snapshot
from .negotiation import HTML, JSONLD, NTRIPLES, OXIGRAPH_FORMAT, RDFXML, TURTLE, by_key, negotiate
from .pages import per_build
from .state import Snapshot

bp = Blueprint("docs", __name__)

OFFERS = (HTML, TURTLE, JSONLD, NTRIPLES, RDFXML)
DCT = "http://purl.org/dc/terms/"
VANN = "http://purl.org/vocab/vann/"
NAMES = {**PREFIXES, "vann": VANN, "mgsh": MGSH}
Term = NamedNode | BlankNode | Literal


# --- an RDF graph as something a template can walk --------------------------

@dataclass(frozen=True)
class Ref:
    """One piece of a rendered value: text, with a link when it names something."""
    text: str
    href: str | None = None
    literal: bool = False


@dataclass
class Graph:
    """The triples of one document, indexed by subject (order-free, like RDF)."""
    triples: list[Quad]
    by_subject: dict[Term, dict[str, list[Term]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for t in self.triples:
            self.by_subject.setdefault(t.subject, {}).setdefault(t.predicate.value, []).append(t.object)
        for props in self.by_subject.values():
            for values in props.values():   # this vocabulary's own terms first, then the rest
                values.sort(key=lambda v: (not (isinstance(v, NamedNode) and v.value.startswith(MG)), str(v)))

    def values(self, s: Term, p: str) -> list[Term]:
        return self.by_subject.get(s, {}).get(p, [])

    def one(self, s: Term, p: str) -> str:
        vals = self.values(s, p)
        return vals[0].value if vals else ""

    def typed(self, *classes: str) -> list[NamedNode]:
        wanted = {NamedNode(c) for c in classes}
        return [s for s, props in self.by_subject.items() if isinstance(s, NamedNode)
                and wanted.intersection(props.get(RDF + "type", []))]

    def items(self, head: Term) -> list[Term] | None:
        """The members of an RDF list starting at ``head``, or None if it is not one."""
        out: list[Term] = []
        node = head
        while node != NamedNode(RDF + "nil"):
            first = self.values(node, RDF + "first")
            rest = self.values(node, RDF + "rest")
            if not first or not rest or len(out) > 1000:
                return None
            out.append(first[0])
            node = rest[0]
        return out


def curie(iri: str) -> str:
    for prefix, ns in NAMES.items():
        if iri.startswith(ns) and iri != ns and "/" not in iri[len(ns):] and "#" not in iri[len(ns):]:
            return f"{prefix}:{iri[len(ns):]}"
    return iri


def href_of(iri: str, here: str) -> str:
    """Terms of the page being shown link to their anchor, other mg-rdf terms to their page."""
    if iri.startswith(MG):
        local = iri[len(MG):]
        return f"#{local}" if here == "ontology" else url_for("docs.ontology") + f"#{local}"
    if iri.startswith(MGSH):
        local = iri[len(MGSH):]
        return f"#{local}" if here == "shapes" else url_for("docs.shapes") + f"#{local}"
    return iri


def render(g: Graph, term: Term, here: str, depth: int = 0) -> list[Ref]:
    """A term as text and links: IRIs as prefixed names, lists, unions, nested shapes."""
    if isinstance(term, NamedNode):
        return [Ref(curie(term.value), href_of(term.value, here))]
    if isinstance(term, Literal):
        return [Ref(term.value, literal=True)]
    if depth > 6:
        return [Ref("[…]")]
    for p, joiner in ((OWL + "unionOf", " or "), (OWL + "intersectionOf", " and "), (SH + "or", " or "),
                      (SH + "and", " and "), (SH + "xone", " exactly one of ")):
        members = g.values(term, p)
        parts = g.items(members[0]) if members else None
        if parts is not None:
            return _joined([render(g, m, here, depth + 1) for m in parts], joiner)
    parts = g.items(term)
    if parts is not None:
        return [Ref("( ")] + _joined([render(g, m, here, depth + 1) for m in parts], " ") + [Ref(" )")]
    out = [Ref("[ ")]
    for p, vals in sorted(g.by_subject.get(term, {}).items()):
        if p == RDF + "type" and vals == [NamedNode(OWL + "Class")]:
            continue
        out += ([Ref(" ; ")] if len(out) > 1 else []) + [Ref(curie(p), href_of(p, here)), Ref(" ")]
        out += _joined([render(g, v, here, depth + 1) for v in vals], ", ")
    return out + [Ref(" ]")]


def _joined(parts: list[list[Ref]], joiner: str) -> list[Ref]:
    out: list[Ref] = []
    for i, part in enumerate(parts):
        out += ([Ref(joiner)] if i else []) + part
    return out


# --- documentation of terms -------------------------------------------------

SKIP = {RDF + "type", RDFS + "label", RDFS + "comment", RDFS + "isDefinedBy", SKOS + "prefLabel",
        SKOS + "definition", RDFS + "subClassOf"}
LABELS = {RDFS + "subClassOf": "Subclass of", RDFS + "subPropertyOf": "Subproperty of",
          OWL + "equivalentClass": "Equivalent class", OWL + "equivalentProperty": "Equivalent property",
          SKOS + "closeMatch": "Close match", SKOS + "exactMatch": "Exact match",
          SKOS + "broadMatch": "Broader match", SKOS + "narrowMatch": "Narrower match",
          RDFS + "domain": "Domain", RDFS + "range": "Range", OWL + "inverseOf": "Inverse of",
          MG + "yamlField": "YAML field", SKOS + "inScheme": "In scheme", SKOS + "notation": "Notation",
          SKOS + "topConceptOf": "Top concept of", SKOS + "hasTopConcept": "Top concepts",
          OWL + "sameAs": "Same as", RDFS + "seeAlso": "See also"}
CATEGORIES = (("classes", "Classes", (OWL + "Class", RDFS + "Class")),
              ("object-properties", "Object properties", (OWL + "ObjectProperty",)),
              ("datatype-properties", "Datatype properties", (OWL + "DatatypeProperty",)),
              ("other-properties", "Other properties", (RDF + "Property",)),
              ("annotation-properties", "Annotation properties", (OWL + "AnnotationProperty",)),
              ("datatypes", "Datatypes", (RDFS + "Datatype",)),
              ("concept-schemes", "Concept schemes", (SKOS + "ConceptScheme",)),
              ("concepts", "Concepts", (SKOS + "Concept",)))


@dataclass
class TermDoc:
    iri: str
    anchor: str                 # the local name: the fragment of the term's IRI
    label: str
    comment: str
    kinds: list[Ref]
    facts: list[tuple[str, list[Ref]]]   # (what, value) rows, e.g. ("Domain", [...])
    symmetric: bool = False


def describe(g: Graph, s: NamedNode, ns: str, here: str, extra: Iterable[tuple[str, list[Ref]]] = ()) -> TermDoc:
    rows = []
    supers = g.values(s, RDFS + "subClassOf")
    if supers:
        rows.append((LABELS[RDFS + "subClassOf"], _joined([render(g, v, here) for v in supers], ", ")))
    for p in sorted(g.by_subject[s], key=lambda p: (p not in LABELS, list(LABELS).index(p) if p in LABELS else 0, p)):
        if p in SKIP:
            continue
        rows.append((LABELS.get(p, curie(p)), _joined([render(g, v, here) for v in g.values(s, p)], ", ")))
    types = g.values(s, RDF + "type")
    return TermDoc(s.value, s.value[len(ns):], g.one(s, RDFS + "label") or g.one(s, SKOS + "prefLabel"),
                   g.one(s, RDFS + "comment") or g.one(s, SKOS + "definition"),
                   _joined([render(g, t, here) for t in types], ", "), rows + list(extra),
                   NamedNode(OWL + "SymmetricProperty") in types)


def _key(doc: TermDoc) -> tuple[str, str]:
    return (doc.anchor.casefold(), doc.anchor)


def ontology_doc(g: Graph) -> dict:
    """Everything the ontology page shows, grouped as the page lists it."""
    head = NamedNode(ONTOLOGY_IRI)
    domains: dict[str, list[Ref]] = {}
    ranges: dict[str, list[Ref]] = {}
    for s, props in g.by_subject.items():
        if not isinstance(s, NamedNode):
            continue
        for p, index in ((RDFS + "domain", domains), (RDFS + "range", ranges)):
            for v in props.get(p, []):
                for cls in _named_members(g, v):
                    index.setdefault(cls, []).append(Ref(curie(s.value), href_of(s.value, "ontology")))
    seen: set[str] = set()
    sections = []
    for key, title, classes in CATEGORIES:
        docs = []
        for s in g.typed(*classes):
            if not s.value.startswith(MG) or s.value in seen:
                continue
            seen.add(s.value)
            extra = [(what, _joined([[r] for r in sorted(index[s.value], key=lambda r: r.text)], ", "))
                     for what, index in (("Properties with this domain", domains),
                                         ("Properties with this range", ranges)) if s.value in index]
            docs.append(describe(g, s, MG, "ontology", extra))
        sections.append((key, title, sorted(docs, key=_key)))
    rest = [describe(g, s, MG, "ontology") for s in g.by_subject
            if isinstance(s, NamedNode) and s.value.startswith(MG) and s.value not in seen and s.value != MG]
    sections.append(("other-terms", "Other terms", sorted(rest, key=_key)))
    notes = [describe(g, s, "", "ontology") for s in g.by_subject
             if isinstance(s, NamedNode) and s != head and not s.value.startswith(MG)]
    for note in notes:   # e.g. the mgx: namespace: anchor by its last path segment ("unmapped")
        note.anchor = re.sub(r"[^A-Za-z0-9_-]", "", note.iri.rstrip("#/").rsplit("/", 1)[-1]) or "note"
    return {"header": _header(g, head), "sections": [s for s in sections if s[2]], "notes": notes}


def _named_members(g: Graph, v: Term) -> list[str]:
    if isinstance(v, NamedNode):
        return [v.value]
    members = g.values(v, OWL + "unionOf")
    items = g.items(members[0]) if members else None
    return [m.value for m in items or [] if isinstance(m, NamedNode)]


def _header(g: Graph, head: NamedNode) -> dict:
    return {"iri": head.value, "title": g.one(head, DCT + "title") or g.one(head, RDFS + "label"),
            "description": [p.strip() for p in g.one(head, DCT + "description").split("\n\n") if p.strip()],
            "version": g.one(head, OWL + "versionInfo"), "version_iri": g.one(head, OWL + "versionIRI"),
            "license": g.one(head, DCT + "license"), "creator": g.one(head, DCT + "creator"),
            "source": g.one(head, DCT + "source"), "prefix": g.one(head, VANN + "preferredNamespacePrefix"),
            "namespace": g.one(head, VANN + "preferredNamespaceUri"),
            "imports": [v.value for v in g.values(head, OWL + "imports")],
            "see_also": [v.value for v in g.values(head, RDFS + "seeAlso")]}


@dataclass
class Constraint:
    path: list[Ref]
    rules: list[tuple[str, list[Ref]]]
    severity: str
    message: str
    shared: str | None = None       # anchor of a named property shape


def _constraint(g: Graph, ps: Term) -> Constraint:
    rules = [(curie(p).removeprefix("sh:"), _joined([render(g, v, "shapes") for v in vals], ", "))
             for p, vals in sorted(g.by_subject.get(ps, {}).items())
             if p not in (SH + "path", SH + "message", SH + "severity", RDF + "type")]
    severity = g.one(ps, SH + "severity")
    return Constraint(_joined([render(g, v, "shapes") for v in g.values(ps, SH + "path")], ", "), rules,
                      severity.rsplit("#", 1)[-1] if severity else "Violation", g.one(ps, SH + "message"),
                      ps.value[len(MGSH):] if isinstance(ps, NamedNode) and ps.value.startswith(MGSH) else None)


def shapes_doc(g: Graph) -> dict:
    """Node shapes with their property constraints, and the shared property shapes."""
    nodes = []
    for s in sorted(g.typed(SH + "NodeShape"), key=lambda n: n.value.casefold()):
        own = [(curie(p).removeprefix("sh:"), _joined([render(g, v, "shapes") for v in vals], ", "))
               for p, vals in sorted(g.by_subject[s].items()) if p not in (RDF + "type", SH + "property", SH + "sparql")]
        # property shapes, and SPARQL-based constraints (whose message names what went wrong)
        constraints = sorted((_constraint(g, ps) for ps in (*g.values(s, SH + "property"), *g.values(s, SH + "sparql"))),
                             key=lambda c: ("".join(r.text for r in c.path), c.message))
        nodes.append({"anchor": s.value.removeprefix(MGSH), "iri": s.value, "own": own,
                      "constraints": constraints})
    shared = [(s.value.removeprefix(MGSH), _constraint(g, s))
              for s in sorted(g.typed(SH + "PropertyShape"), key=lambda n: n.value.casefold())]
    return {"header": _header(g, NamedNode(SHAPES_IRI)), "nodes": nodes, "shared": shared}


# --- reading and serialising ------------------------------------------------

DOCUMENTS = {"ontology": (ONTOLOGY_IRI, ONTOLOGY_FILES, ontology_doc, "ontology.html"),
             "shapes": (SHAPES_IRI, SHAPES_FILES, shapes_doc, "shapes.html")}


def graph_of(snap: Snapshot, name: str) -> Graph:
    """The document's triples as the build loaded them (or from the source tree)."""
    graph_iri, paths, _, _ = DOCUMENTS[name]

    def read() -> Graph:
        quads = list(snap.store.quads_for_pattern(None, None, None, NamedNode(graph_iri)))
        if not quads:
            quads = [q for path in paths for q in parse(path=str(path), format=RdfFormat.TURTLE)]
        return Graph(sorted((Quad(q.subject, q.predicate, q.object) for q in quads), key=str))

    return per_build(snap, f"graph:{name}", read)


def document_bytes(snap: Snapshot, name: str, key: str) -> bytes:
    def make() -> bytes:
        fmt = OXIGRAPH_FORMAT[key]
        prefixes = NAMES if fmt in (RdfFormat.TURTLE, RdfFormat.RDF_XML) else None
        return serialize(graph_of(snap, name).triples, format=fmt, prefixes=prefixes)
    return per_build(snap, f"{name}.{key}", make)


def _serve(name: str, ext: str | None) -> Response:
    snap = current_snapshot()
    if ext is not None:
        chosen = by_key(ext, OFFERS)
        if chosen is None or ext != chosen.key:
            abort(404)
    else:
        chosen = negotiate(request.accept_mimetypes, OFFERS, HTML)
        if chosen is None:
            return Response("Available as text/html, text/turtle, application/ld+json, application/n-triples "
                            "or application/rdf+xml.\n", 406, mimetype="text/plain")
    if chosen is HTML:   # the page depends on nothing but the build, so it is rendered once
        _, _, model, template = DOCUMENTS[name]
        body = per_build(snap, f"{name}.html", lambda: render_template(
            template, doc=model(graph_of(snap, name)), formats=OFFERS[1:], name=name).encode())
    else:
        body = document_bytes(snap, name, chosen.key)
    response = make_response(body)
    response.content_type = chosen.content_type
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    if ext is None:
        response.vary.add("Accept")
        response.headers["Content-Location"] = url_for(f"docs.{name}", ext=chosen.key)
    return response.make_conditional(request)


@bp.get("/ontology")
@bp.get("/ontology.<ext>")
def ontology(ext: str | None = None):
    return _serve("ontology", ext)


@bp.get("/ontology/")
def ontology_namespace():
    return redirect(url_for("docs.ontology"), 301)


@bp.get("/ontology/<version>")
def ontology_version(version: str):
    """The versionIRI of the release served here resolves to the same document."""
    g = graph_of(current_snapshot(), "ontology")
    if version != g.one(NamedNode(ONTOLOGY_IRI), OWL + "versionInfo"):
        abort(404)
    return redirect(url_for("docs.ontology"), 303)


@bp.get("/shapes")
@bp.get("/shapes.<ext>")
def shapes(ext: str | None = None):
    return _serve("shapes", ext)
