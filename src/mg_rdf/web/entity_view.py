"""What an entity page shows, read from the store: ``gather(snapshot, id)``.

The functions here take a ``Snapshot`` and an entity id that is a key of
``snapshot.entities`` (the routes check that first, so no text from a URL ever
reaches the store) and return plain data for the template. They read with
``Store.quads_for_pattern`` on the entity's own IRIs, the fastest access
Oxigraph has (MEASURED.md: a SPARQL describe with an outer VALUES scans).

Where things are (see ``mg_rdf.assembly``): the entity's graph holds what its
file states, the reverse of each of its references and its provenance; what
*other* files say about it sits in their graphs with the entity as subject
(``camp mg:event ev`` in the event's graph when the event names the campaign).
So "direct links" are read from the entity's own graph, "inferred backlinks"
from the quads about the entity in every other graph.
"""

from __future__ import annotations

import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from pyoxigraph import BlankNode, Literal, NamedNode, Triple

from .. import schema
from ..vocab import MG, MGX, ONTOLOGY_IRI, OWL, PROV, RDF, RDFS, SCHEMA, SKOS
from .audit_view import AuditView, audit_view
from .markdown import render
from .state import Snapshot

Term = NamedNode | BlankNode | Literal | Triple

# Properties a file uses to name another entity (the frontmatter reference fields).
FORWARD: frozenset[str] = frozenset(f.prop for t in schema.TYPES.values() for f in t.fields.values()
                                    if f.kind in schema.REFERENCE_KINDS)
PROSE: frozenset[str] = frozenset(f.prop for t in schema.TYPES.values() for f in t.fields.values()
                                  if f.mentions_from_prose)   # Markdown fields, rendered like the body
DATE_PROPS = ("startDate", "endDate", "date", "founded", "publicationDate", "created", "lastUpdated")
PART_KINDS = {"source": "sources", "affiliation": "affiliations", "profile": "profiles", "effect": "effects"}
_SHOWN_ELSEWHERE = {"identifier", "name", "body", "mentions", "mentionedBy", "tag", "status", "confidence",
                    "ongoing", "affiliatedWith", "source", "affiliation", "publicProfile", "effect", *DATE_PROPS}
_SKIP = {RDF + "type", RDFS + "label"}
SAME_AS = (OWL + "sameAs", SCHEMA + "sameAs")


@dataclass(frozen=True)
class EntityRef:
    id: str
    name: str
    type: str | None          # schema type name; None when no such entity is in this build

    @property
    def exists(self) -> bool:
        return self.type is not None


@dataclass(frozen=True)
class Link:
    relation: str             # ontology local name (leadOrganization, mentionedBy, …)
    label: str                # what people read ("lead organisation")
    target: EntityRef | None  # None: the file gave text where an id belongs
    text: str = ""            # that text
    detail: str = ""          # role and period of an affiliation
    mention: bool = False     # a link in prose, not a frontmatter field


@dataclass(frozen=True)
class Value:
    text: str
    href: str | None = None   # an external link: only for a valid http(s) IRI in the store
    html: str | None = None   # rendered Markdown, for prose fields


ToValue = Callable[..., Value]   # (term, prose=False) -> Value


@dataclass(frozen=True)
class Fact:
    label: str
    values: tuple[Value, ...]
    unmapped: bool = False    # an mgx: field the ontology does not know


@dataclass
class Part:
    """A source, affiliation, public profile or effect: its fields by local name."""

    iri: str
    values: dict[str, list[Value]] = field(default_factory=dict)
    target: EntityRef | None = None          # an affiliation's organisation
    unmapped: list[Fact] = field(default_factory=list)

    def first(self, name: str) -> Value | None:
        v = self.values.get(name)
        return v[0] if v else None


@dataclass(frozen=True)
class Tag:
    label: str
    slug: str
    iri: str


@dataclass(frozen=True)
class Origin:
    path: str
    commit: str | None
    url: str | None           # prov:wasDerivedFrom, the file at that commit
    blob: str | None


@dataclass
class EntityView:
    id: str
    iri: str
    graph: str
    name: str
    type: str
    type_label: str
    status: Value | None = None
    confidence: Value | None = None
    dates: list[tuple[str, str]] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    direct: list[Link] = field(default_factory=list)        # stated in this file's frontmatter
    backlinks: list[Link] = field(default_factory=list)     # other files' frontmatter naming this one
    mentions: list[Link] = field(default_factory=list)      # entity links in this file's prose
    mentioned_by: list[Link] = field(default_factory=list)  # entity links to this one in other files' prose
    body_html: str | None = None
    facts: list[Fact] = field(default_factory=list)
    parts: dict[str, list[Part]] = field(default_factory=dict)
    origin: Origin | None = None
    same_as: list[str] = field(default_factory=list)
    audit: AuditView | None = None    # the claim-level audit of the entry (audits/<id>.md), if any

    @property
    def ref(self) -> EntityRef:
        return EntityRef(self.id, self.name, self.type)

    @property
    def declared(self) -> int:
        """The file's own frontmatter references ("N declared connections")."""
        return len(self.direct)

    @property
    def adjacencies(self) -> int:
        """Frontmatter links in both directions (text mentions are counted apart)."""
        return len(self.direct) + len(self.backlinks)

    @property
    def neighbours(self) -> list[EntityRef]:
        """Distinct entities linked by frontmatter in either direction."""
        return _distinct(link.target for link in (*self.direct, *self.backlinks))

    @property
    def mentioned(self) -> list[EntityRef]:
        """Entities linked only through prose, in either direction."""
        near = {n.id for n in self.neighbours}
        return [n for n in _distinct(link.target for link in (*self.mentions, *self.mentioned_by))
                if n.id not in near]


def _distinct(refs: Iterable[EntityRef | None]) -> list[EntityRef]:
    seen: dict[str, EntityRef] = {}
    for r in refs:
        if r is not None and r.exists and r.id not in seen:
            seen[r.id] = r
    return list(seen.values())


def grouped(links: list[Link]) -> list[tuple[str, list[Link]]]:
    """Links grouped by relation label (groups and members in a stable, readable order)."""
    groups: dict[str, list[Link]] = defaultdict(list)
    for link in links:
        groups[link.label].append(link)
    return [(label, sorted(groups[label], key=lambda k: (k.target.name.casefold() if k.target else k.text)))
            for label in sorted(groups)]


# -- labels of terms (read once per build) -----------------------------------

_LABELS: dict[str, dict[str, str]] = {}


def labels(snap: Snapshot) -> dict[str, str]:
    """IRI -> label for ontology terms, vocabulary concepts and tags of this build."""
    found = _LABELS.get(snap.version)
    if found is None:
        found = {}
        onto, vocab = NamedNode(ONTOLOGY_IRI), NamedNode(snap.iris.vocabulary_graph)
        for graph, pred in ((onto, RDFS + "label"), (onto, SKOS + "prefLabel"), (vocab, SKOS + "prefLabel")):
            for q in snap.store.quads_for_pattern(None, NamedNode(pred), None, graph):
                found.setdefault(q.subject.value, q.object.value)
        _LABELS.clear()   # one build at a time is enough; the old one is not asked again
        _LABELS[snap.version] = found
    return found


def _readable(local: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", local).lower()


def term_label(snap: Snapshot, iri: str) -> str:
    if iri.startswith(MGX):
        return iri[len(MGX):].replace("_", " ")
    return labels(snap).get(iri) or _readable(iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1])


def relation_label(local: str) -> str:
    rel = schema.RELATIONS.get(local)
    return rel.label if rel else _readable(local)


# -- gathering ----------------------------------------------------------------

def entity_ref(snap: Snapshot, iri_or_id: str) -> EntityRef:
    eid = snap.iris.entity_id_of(iri_or_id) or iri_or_id
    e = snap.entities.get(eid)
    return EntityRef(eid, e.name, e.type) if e else EntityRef(eid, eid, None)


_RENDERED: OrderedDict[tuple, str] = OrderedDict()
RENDER_CACHE_SIZE = 2048   # rendered prose pieces kept (markdown-it is the slowest step of a page)


def prose_html(snap: Snapshot, text: str, path: str, page_prefix: str, drop_title: str | None = None,
               page_suffix: str = "") -> str:
    """``text`` rendered by ``markdown.render``, entity links as ``page_prefix + id + page_suffix``.

    Cached: within one build the same text always renders the same way, so the key
    is (build, prefix, file, text)."""
    key = (snap.version, page_prefix, page_suffix, path, text, drop_title)
    html = _RENDERED.get(key)
    if html is None:
        def href(eid: str) -> str | None:
            return page_prefix + quote(eid, safe="") + page_suffix if eid in snap.entities else None
        html = render(text, path, href, drop_title)
        _RENDERED[key] = html
        while len(_RENDERED) > RENDER_CACHE_SIZE:
            _RENDERED.popitem(last=False)
    else:
        _RENDERED.move_to_end(key)
    return html


def gather(snap: Snapshot, entity_id: str, page_prefix: str, page_suffix: str = "") -> EntityView:
    """Everything the entity page shows. ``entity_id`` must be a key of ``snap.entities``;
    links in prose to an entity ``x`` become ``page_prefix + x + page_suffix``."""
    summary = snap.entities[entity_id]
    etype = schema.TYPES[summary.type]
    e_iri, g_iri = snap.iris.entity(entity_id), snap.iris.graph(entity_id)
    own: dict[str, list[Term]] = defaultdict(list)
    part_quads: dict[str, dict[str, list[Term]]] = defaultdict(lambda: defaultdict(list))
    about_graph: dict[str, str] = {}
    for q in snap.store.quads_for_pattern(None, None, None, NamedNode(g_iri)):
        s = q.subject.value
        if s == e_iri:
            own[q.predicate.value].append(q.object)
        elif s.startswith(e_iri + "#"):
            part_quads[s][q.predicate.value].append(q.object)
        elif s == g_iri:
            about_graph[q.predicate.value] = q.object.value
    view = EntityView(entity_id, e_iri, g_iri, summary.name, summary.type, etype.label)
    path = summary.path

    def value(term: Term, prose: bool = False) -> Value:
        if isinstance(term, NamedNode):
            if term.value.startswith(("http://", "https://")) and not term.value.startswith(MG):
                return Value(term.value, href=term.value)
            return Value(term_label(snap, term.value))
        text = term.value
        return Value(text, html=prose_html(snap, text, path, page_prefix, page_suffix=page_suffix) if prose else None)

    for local in ("status", "confidence"):
        terms = own.get(MG + local)
        if terms:
            setattr(view, local, value(terms[0]))
    view.dates = _dates(snap, own)
    view.tags = _tags(snap, own.get(MG + "tag", []))
    view.same_as = sorted(t.value for p in SAME_AS for t in own.get(p, []))
    for t in own.get(MG + "body", []):
        view.body_html = prose_html(snap, t.value, path, page_prefix, drop_title=summary.name, page_suffix=page_suffix)
    for p, terms in own.items():
        local = p[len(MG):] if p.startswith(MG) else None
        if local in FORWARD:
            for t in terms:
                if isinstance(t, NamedNode):
                    view.direct.append(Link(local, relation_label(local), entity_ref(snap, t.value)))
                else:
                    view.direct.append(Link(local, relation_label(local), None, text=t.value))
        elif local == "mentions":
            view.mentions = [Link(local, "mentions", entity_ref(snap, t.value), mention=True) for t in terms]
    view.parts = _parts(snap, part_quads, value)
    for aff in view.parts.get("affiliations", []):
        org = aff.first("organization")
        if aff.target is not None or org is not None:
            detail = ", ".join(v.text for v in (aff.first("role"), aff.first("period")) if v)
            view.direct.append(Link("affiliatedWith", relation_label("affiliatedWith"), aff.target,
                                     text=org.text if org and aff.target is None else "", detail=detail))
    view.facts = _facts(snap, etype, own, value)
    _others(snap, view)
    view.origin = Origin(about_graph.get(MG + "sourcePath", path), about_graph.get(MG + "corpusCommit"),
                         about_graph.get(PROV + "wasDerivedFrom"), about_graph.get(MG + "sourceBlob"))
    view.audit = audit_view(snap, entity_id)
    return view


def _others(snap: Snapshot, view: EntityView) -> None:
    """What other files state about the entity: backlinks and mentions in their prose."""
    own_graph = view.graph
    for q in snap.store.quads_for_pattern(NamedNode(view.iri), None, None, None):
        if q.graph_name.value == own_graph or not isinstance(q.object, NamedNode):
            continue
        p = q.predicate.value
        local = p[len(MG):] if p.startswith(MG) else ""
        if local == "audit":   # stated in the audit's graph: the Audit section shows it, it is no connection
            continue
        if local == "mentionedBy":
            view.mentioned_by.append(Link(local, "mentioned by", entity_ref(snap, q.object.value), mention=True))
        elif local in schema.RELATIONS and snap.iris.entity_id_of(q.object.value):
            view.backlinks.append(Link(local, relation_label(local), entity_ref(snap, q.object.value)))


def _dates(snap: Snapshot, own: dict[str, list[Term]]) -> list[tuple[str, str]]:
    out = []
    for local in DATE_PROPS:
        for t in own.get(MG + local, []):
            out.append((term_label(snap, MG + local), t.value))
        if local == "endDate" and any(t.value == "true" for t in own.get(MG + "ongoing", [])):
            out.append((term_label(snap, MG + "endDate"), "ongoing"))
    return out


def _tags(snap: Snapshot, terms: list[Term]) -> list[Tag]:
    scheme = snap.iris.tag_scheme
    tags = []
    for t in terms:
        slug = t.value[len(scheme):] if t.value.startswith(scheme) else t.value
        tags.append(Tag(labels(snap).get(t.value, slug), slug, t.value))
    return sorted(tags, key=lambda t: t.label.casefold())


def _part_number(iri: str) -> tuple[str, int]:
    kind, _, n = iri.rsplit("#", 1)[-1].rpartition("-")
    return (kind, int(n) if n.isdigit() else 0)


def _parts(snap: Snapshot, part_quads: dict[str, dict[str, list[Term]]], value: ToValue) -> dict[str, list[Part]]:
    out: dict[str, list[Part]] = defaultdict(list)
    for iri in sorted(part_quads, key=_part_number):
        kind = PART_KINDS.get(_part_number(iri)[0])
        if kind is None:
            continue
        part = Part(iri)
        for p, terms in part_quads[iri].items():
            if p in _SKIP:
                continue
            if p.startswith(MGX):
                part.unmapped.append(Fact(term_label(snap, p), tuple(value(t) for t in terms), True))
                continue
            local = p[len(MG):] if p.startswith(MG) else p
            if local == "organization" and isinstance(terms[0], NamedNode):
                part.target = entity_ref(snap, terms[0].value)
            part.values[local] = [value(t, prose=local == "description") for t in terms]
        out[kind].append(part)
    return dict(out)


def _facts(snap: Snapshot, etype: schema.EntityType, own: dict[str, list[Term]], value: ToValue) -> list[Fact]:
    """Every other statement of the file, in the schema's field order, then what the schema lacks."""
    facts = []
    done = set(_SKIP) | set(SAME_AS) | {MG + p for p in (*_SHOWN_ELSEWHERE, *FORWARD)}
    order = [(f.prop, f.prop in PROSE) for f in etype.fields.values()] + [("publisherName", False)]
    for local, prose in order:
        p = MG + local
        if p in done or p not in own:
            continue
        done.add(p)
        facts.append(Fact(term_label(snap, p), tuple(value(t, prose) for t in own[p])))
    for p in sorted(own):
        if p in done:
            continue
        prose = p.startswith(MG) and p[len(MG):] in PROSE
        facts.append(Fact(term_label(snap, p), tuple(value(t, prose) for t in own[p]), p.startswith(MGX)))
    return facts

