"""What changed between two pins of the corpus, entity by entity.

Each pin is mapped with the usual pipeline (or read back from its store) and
reduced to what each entity's file *states*: the triples of its own named graph
whose subject is the entity or one of its parts (``{entity}#source-1`` …). Left
out, on purpose:

- the graph's provenance (commit, blob, path): it changes with every commit;
- the reverse links the file implies (``org mg:leadsCampaign camp`` in the
  campaign's graph) and ``mg:mentionedBy``: they restate a reference that is
  compared where it is stated, and they come and go with the *other* entity's
  existence, which the diff reports as that entity being added or removed.

An entity is then **added** (its id is only in the new pin), **removed** (only in
the old), **renamed** (an old id gone and a new id come, paired by a git rename
between the two commits or by identical content once the id, name and label are
set aside) or **modified** (its stated triples differ). Modified and renamed
entities carry the triples added and removed (a renamed entity's old triples are
first rewritten to the new IRI); an added or removed entity's triples are its
whole graph at that pin, so they are not repeated.

The RDF form uses the changeset terms of ``ontology/mg-changes.ttl``: a
``mg:Diff`` between two ``mg:Pin``s, one ``mg:EntityChange`` per entity with its
``mg:changeKind``, and each added or removed triple as an ``rdf:Statement`` (the
W3C reification the Talis changeset vocabulary uses; RDF-star triple terms would
be shorter, but pyoxigraph cannot write them as JSON-LD and rdflib cannot read
them, so statements keep the diff readable by every RDF 1.1 tool).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from pyoxigraph import Literal, NamedNode, Quad, RdfFormat, Triple, parse, serialize

from . import schema
from .vocab import DCT, MG, PREFIXES, RDF, RDFS, XSD, DataIris

KINDS = ("renamed", "removed", "added", "modified")    # the order of every listing
_CLASS_TO_TYPE = {MG + t.cls: t.name for t in schema.TYPES.values()}
_NAMING = {MG + "identifier", MG + "name", RDFS + "label"}   # set aside to recognise a rename by content
_PLACEHOLDER = "urn:mg-rdf:renamed-entity"


@dataclass(frozen=True)
class EntityState:
    """One entity at one pin, as the diff sees it."""

    id: str
    type: str                  # schema type name (organization, campaign…)
    name: str
    path: str
    stated: frozenset[Triple]


@dataclass
class PinRef:
    name: str
    key: str
    commit: str | None = None
    date: str | None = None

    @property
    def label(self) -> str:
        bits = [b for b in (self.commit[:7] if self.commit else None, (self.date or "")[:10]) if b]
        return f"{self.name} ({', '.join(bits)})" if bits else self.name


@dataclass
class EntityChange:
    kind: str                  # added, removed, renamed, modified
    id: str                    # the id at the new pin (removed: at the old one)
    name: str
    type: str
    old_id: str | None = None  # renamed: the id at the old pin
    evidence: str | None = None  # renamed: how the pair was found
    added: list[Triple] = field(default_factory=list)
    removed: list[Triple] = field(default_factory=list)

    def properties(self, iris: DataIris) -> list[tuple[str, str, int, int]]:
        """(part kind or "", property IRI, triples added, triples removed) per property that
        changed: ``[("", mg:tag, 2, 1), ("source", mg:note, 1, 1)]``."""
        entity = iris.entity(self.id)
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for i, triples in enumerate((self.added, self.removed)):
            for t in triples:
                part = "" if t.subject.value == entity else t.subject.value.rsplit("#", 1)[-1].rsplit("-", 1)[0]
                counts[(part, t.predicate.value)][i] += 1
        return [(part, prop, a, r) for (part, prop), (a, r) in sorted(counts.items())]


@dataclass
class Diff:
    old: PinRef
    new: PinRef
    changes: list[EntityChange]
    unchanged: int
    before: int                # entities at the old pin
    after: int                 # entities at the new pin

    def counts(self) -> dict[str, int]:
        c = Counter(ch.kind for ch in self.changes)
        return {k: c.get(k, 0) for k in KINDS}

    def of_kind(self, kind: str) -> list[EntityChange]:
        return [ch for ch in self.changes if ch.kind == kind]

    def renames(self) -> dict[str, str]:
        """Old id -> new id, for every renamed entity."""
        return {ch.old_id: ch.id for ch in self.changes if ch.kind == "renamed" and ch.old_id}


# -- the content of a pin ------------------------------------------------------

def content_from_quads(quads: Iterable[Quad], iris: DataIris) -> dict[str, EntityState]:
    """Every entity of a pin and its stated triples, from the quads of its entity graphs
    (a pin's store, or ``assembly.entity_graphs`` of a mapping)."""
    graph_prefix = iris.base + "graph/"
    by_graph: dict[str, list[Triple]] = defaultdict(list)
    for q in quads:
        g = q.graph_name
        if isinstance(g, NamedNode) and g.value.startswith(graph_prefix):
            by_graph[g.value].append(q.triple)
    out: dict[str, EntityState] = {}
    describes, source_path = MG + "describes", MG + "sourcePath"
    for g, triples in by_graph.items():
        about = {t.predicate.value: t.object.value for t in triples
                 if isinstance(t.subject, NamedNode) and t.subject.value == g}
        entity = about.get(describes)
        eid = iris.entity_id_of(entity) if entity else None
        if eid is None:
            continue   # vocabulary, dataset, build, renames
        part = entity + "#"
        stated = frozenset(t for t in triples if isinstance(t.subject, NamedNode)
                           and (t.subject.value == entity or t.subject.value.startswith(part)))
        etype, name = "", eid
        for t in stated:
            if t.subject.value != entity:
                continue
            if t.predicate.value == RDF + "type" and t.object.value in _CLASS_TO_TYPE:
                etype = _CLASS_TO_TYPE[t.object.value]
            elif t.predicate.value == MG + "name":
                name = t.object.value
        out[eid] = EntityState(eid, etype, name, about.get(source_path, ""), stated)
    return out


def content_of_store(store, iris: DataIris) -> dict[str, EntityState]:
    """``content_from_quads`` of a whole pyoxigraph store."""
    return content_from_quads(store.quads_for_pattern(None, None, None, None), iris)


# -- comparing two pins ------------------------------------------------------------

def compare(old: dict[str, EntityState], new: dict[str, EntityState], old_pin: PinRef, new_pin: PinRef,
            iris: DataIris, git_renames: Iterable[tuple[str, str, int]] = ()) -> Diff:
    """The diff from ``old`` to ``new``. ``git_renames`` are (old path, new path, similarity %)
    pairs from ``git diff -M`` between the two commits (none for a folder)."""
    gone = sorted(old.keys() - new.keys())
    came = sorted(new.keys() - old.keys())
    gone_left, came_left = set(gone), set(came)
    pairs: list[tuple[str, str, str]] = []      # (old id, new id, evidence)
    old_at = {s.path: s.id for s in old.values()}
    new_at = {s.path: s.id for s in new.values()}
    for old_path, new_path, score in git_renames:
        o, n = old_at.get(old_path), new_at.get(new_path)
        if o in gone_left and n in came_left:
            pairs.append((o, n, f"git rename, {score}% similar"))
            gone_left.discard(o)
            came_left.discard(n)
    by_content: dict[frozenset[Triple], list[str]] = defaultdict(list)
    for o in sorted(gone_left):
        by_content[_normalised(old[o], iris)].append(o)
    for n in sorted(came_left):
        candidates = by_content.get(_normalised(new[n], iris), [])
        if len(candidates) == 1:   # only an unambiguous match is a rename
            o = candidates.pop()
            pairs.append((o, n, "same content under a new id"))
            gone_left.discard(o)
            came_left.discard(n)
    changes: list[EntityChange] = []
    for o, n, evidence in sorted(pairs, key=lambda p: p[1]):
        before = _rebased(old[o].stated, iris.entity(o), iris.entity(n))
        s = new[n]
        changes.append(EntityChange("renamed", n, s.name, s.type, o, evidence,
                                    _sorted(s.stated - before), _sorted(before - s.stated)))
    changes += [EntityChange("removed", o, old[o].name, old[o].type) for o in sorted(gone_left)]
    changes += [EntityChange("added", n, new[n].name, new[n].type) for n in sorted(came_left)]
    unchanged = 0
    for eid in sorted(old.keys() & new.keys()):
        a, b = old[eid].stated, new[eid].stated
        if a == b:
            unchanged += 1
        else:
            changes.append(EntityChange("modified", eid, new[eid].name, new[eid].type,
                                        added=_sorted(b - a), removed=_sorted(a - b)))
    return Diff(old_pin, new_pin, changes, unchanged, len(old), len(new))


def _sorted(triples: Iterable[Triple]) -> list[Triple]:
    return sorted(triples, key=str)


def _swap(term, old: str, new: str):
    if isinstance(term, NamedNode) and (term.value == old or term.value.startswith(old + "#")):
        return NamedNode(new + term.value[len(old):])
    return term


def _rebased(triples: Iterable[Triple], old_iri: str, new_iri: str) -> frozenset[Triple]:
    """The triples with the entity's IRI (and its parts') moved from ``old_iri`` to ``new_iri``."""
    return frozenset(Triple(_swap(t.subject, old_iri, new_iri), t.predicate, _swap(t.object, old_iri, new_iri))
                     for t in triples)


def _normalised(state: EntityState, iris: DataIris) -> frozenset[Triple]:
    """What an entity states with its id, name and label set aside: equal for a pure rename."""
    entity = iris.entity(state.id)
    return _rebased((t for t in state.stated if not (t.subject.value == entity and t.predicate.value in _NAMING)),
                    entity, _PLACEHOLDER)


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


# -- a human summary ---------------------------------------------------------------

def summary_text(diff: Diff, iris: DataIris, limit: int | None = 20) -> str:
    """The diff for people: counts, then each kind's entities (``limit`` per kind, None for all)."""
    c = diff.counts()
    lines = [f"{diff.old.label} → {diff.new.label}",
             f"{diff.before} entities → {diff.after} entities: {c['added']} added, {c['removed']} removed, "
             f"{c['renamed']} renamed, {c['modified']} modified, {diff.unchanged} unchanged"]
    for kind in KINDS:
        items = diff.of_kind(kind)
        lines.append("")
        lines.append(f"{kind.capitalize()} ({len(items)})")
        for ch in items[:limit] if limit is not None else items:
            head = f"  {ch.old_id} → {ch.id}" if kind == "renamed" else f"  {ch.id}"
            head += f"  ({ch.type or 'unknown type'}) {ch.name}"
            if kind == "renamed":
                head += f"  [{ch.evidence}]"
            if kind in ("renamed", "modified"):
                props = ", ".join(f"{part + ' ' if part else ''}{_local(prop)} {signed(a, r)}"
                                  for part, prop, a, r in ch.properties(iris))
                head += f"  +{len(ch.added)} −{len(ch.removed)} triples" + (f": {props}" if props else "")
            lines.append(head)
        if limit is not None and len(items) > limit:
            lines.append(f"  … {len(items) - limit} more (use --all to list every entity)")
    return "\n".join(lines) + "\n"


def signed(added: int, removed: int) -> str:
    """"+2 −1": triples added and removed, each left out when zero."""
    return " ".join(s for s in (f"+{added}" if added else "", f"−{removed}" if removed else "") if s)


# -- the diff as RDF ---------------------------------------------------------------

FORMATS = {"ttl": RdfFormat.TURTLE, "nq": RdfFormat.N_QUADS, "jsonld": RdfFormat.JSON_LD,
           "nt": RdfFormat.N_TRIPLES}
MEDIA_TYPES = {"ttl": "text/turtle; charset=utf-8", "nq": "application/n-quads", "jsonld": "application/ld+json",
               "nt": "application/n-triples"}


def pin_iri(iris: DataIris, key: str) -> str:
    return f"{iris.base}pin/{key}"


def diff_iri(iris: DataIris, old_key: str, new_key: str) -> str:
    return f"{iris.base}diff/{old_key}/{new_key}"


def to_triples(diff: Diff, iris: DataIris) -> list[Triple]:
    """The diff in the changeset vocabulary of ontology/mg-changes.ttl (no blank nodes:
    every change and statement has an IRI under the diff's, stable for the same diff)."""
    d = NamedNode(diff_iri(iris, diff.old.key, diff.new.key))
    a = NamedNode(RDF + "type")

    def m(local: str) -> NamedNode:
        return NamedNode(MG + local)

    def count(n: int) -> Literal:
        return Literal(str(n), datatype=NamedNode(XSD + "integer"))

    out = [Triple(d, a, m("Diff")),
           Triple(d, NamedNode(RDFS + "label"), Literal(f"{diff.old.name} → {diff.new.name}"))]
    for prop, pin in (("fromPin", diff.old), ("toPin", diff.new)):
        p = NamedNode(pin_iri(iris, pin.key))
        out += [Triple(d, m(prop), p), Triple(p, a, m("Pin")), Triple(p, m("corpusRevision"), Literal(pin.name))]
        if pin.commit:
            out.append(Triple(p, m("corpusCommit"), Literal(pin.commit)))
        if pin.date:
            out.append(Triple(p, NamedNode(DCT + "date"), Literal(pin.date, datatype=NamedNode(XSD + "dateTime"))))
    for kind, n in diff.counts().items():
        out.append(Triple(d, m(f"{kind}Entities"), count(n)))
    out.append(Triple(d, m("unchangedEntities"), count(diff.unchanged)))
    for ch in diff.changes:
        node = NamedNode(f"{d.value}#{quote(ch.id, safe='')}" + ("-old" if ch.kind == "removed" else ""))
        out += [Triple(d, m("entityChange"), node), Triple(node, a, m("EntityChange")),
                Triple(node, m("changeKind"), m(f"change-{ch.kind}")),
                Triple(node, m("changedEntity"), NamedNode(iris.entity(ch.id)))]
        if ch.old_id:
            out += [Triple(node, m("formerEntity"), NamedNode(iris.entity(ch.old_id))),
                    Triple(node, m("renameEvidence"), Literal(ch.evidence or ""))]
        for prop, triples, tag in (("addition", ch.added, "add"), ("removal", ch.removed, "del")):
            for t in triples:
                h = hashlib.sha1(str(t).encode()).hexdigest()[:12]
                st = NamedNode(f"{node.value}-{tag}-{h}")
                out += [Triple(node, m(prop), st), Triple(st, a, NamedNode(RDF + "Statement")),
                        Triple(st, NamedNode(RDF + "subject"), t.subject),
                        Triple(st, NamedNode(RDF + "predicate"), t.predicate),
                        Triple(st, NamedNode(RDF + "object"), t.object)]
    return out


def serialize_diff(diff: Diff, fmt: str, iris: DataIris) -> bytes:
    """The diff as Turtle, N-Triples, JSON-LD, or N-Quads (in a graph named by the diff's IRI)."""
    d = diff_iri(iris, diff.old.key, diff.new.key)
    # the diff first, then its pins, then each change and its statements: Turtle groups by subject
    triples = sorted(to_triples(diff, iris), key=lambda t: (t.subject.value != d, t.subject.value.split("#")[0],
                                                            t.subject.value, str(t.predicate), str(t.object)))
    if fmt == "nq":
        g = NamedNode(d)
        return serialize([Quad(t.subject, t.predicate, t.object, g) for t in triples], format=RdfFormat.N_QUADS)
    if fmt not in ("ttl", "jsonld"):
        return serialize(triples, format=FORMATS[fmt])
    known = {**PREFIXES, "id": iris.base + "id/", "pin": iris.base + "pin/", "diff": d + "#"}
    used = {t.value for tr in triples for t in (tr.subject, tr.predicate, tr.object) if isinstance(t, NamedNode)}
    used |= {tr.object.datatype.value for tr in triples if isinstance(tr.object, Literal)}
    prefixes = {p: ns for p, ns in known.items() if any(i.startswith(ns) for i in used)}
    return serialize(triples, format=FORMATS[fmt], prefixes=prefixes)


# -- kept beside a build (JSON, triples as N-Triples lines) ----------------------------------

def save(diff: Diff, path: Path) -> None:
    data = {"old": asdict(diff.old), "new": asdict(diff.new), "unchanged": diff.unchanged,
            "before": diff.before, "after": diff.after,
            "changes": [{**{k: v for k, v in asdict(ch).items() if k not in ("added", "removed")},
                         "added": [str(t) for t in ch.added], "removed": [str(t) for t in ch.removed]}
                        for ch in diff.changes]}
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same diff gives the same bytes
    path.write_bytes(gzip.compress(json.dumps(data, ensure_ascii=False).encode(), mtime=0))


def load(path: Path) -> Diff:
    data = json.loads(gzip.decompress(path.read_bytes()))
    changes = []
    for item in data["changes"]:
        added, removed = _triples(item.pop("added")), _triples(item.pop("removed"))
        changes.append(EntityChange(**item, added=added, removed=removed))
    return Diff(PinRef(**data["old"]), PinRef(**data["new"]), changes, data["unchanged"], data["before"],
                data["after"])


def _triples(lines: list[str]) -> list[Triple]:
    if not lines:
        return []
    text = "".join(line + " .\n" for line in lines)
    return [q.triple for q in parse(text.encode(), format=RdfFormat.N_TRIPLES)]
