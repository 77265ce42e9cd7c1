"""Mapping one entity record to RDF: a pure function, record in, triples out.

No file, network or store access happens here. Every frontmatter field becomes
triples: known fields under their ontology property (``schema.TYPES``), unknown
ones under ``mgx:<field>`` with a warning. References become entity IRIs whether
or not the target exists (the integrity checks and the build decide what a
missing target means); the build, which sees all entities, materialises the
reverse of every relation (``mg_rdf.inference``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pyoxigraph import Literal, NamedNode, Triple

from . import schema
from .dates import NotADate, TypedDate, period_bounds, typed_date
from .links import entity_links, line_of
from .problems import Problem, Severity
from .reader import EntityRecord, line_for
from .schema import Field, Kind
from .vocab import MG, MGX, RDF, RDFS, XSD, DataIris

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ENTITY_ID = re.compile(r"^(?:" + "|".join(re.escape(p) for p in schema.BY_PREFIX) + r")[a-z0-9][a-z0-9-]*$")
MAX_TEXT = 1_000_000  # characters kept of any one value; longer values are cut and reported

_P: dict[str, NamedNode] = {}


def P(local: str) -> NamedNode:
    """The ontology term ``mg:<local>`` (cached: the mapper asks for the same few hundred)."""
    node = _P.get(local)
    if node is None:
        node = _P[local] = NamedNode(MG + local)
    return node


RDF_TYPE = NamedNode(RDF + "type")
RDFS_LABEL = NamedNode(RDFS + "label")
XSD_BOOLEAN = NamedNode(XSD + "boolean")
XSD_INTEGER = NamedNode(XSD + "integer")
XSD_DOUBLE = NamedNode(XSD + "double")
TRUE = Literal("true", datatype=XSD_BOOLEAN)


@dataclass(frozen=True)
class Reference:
    """One entity-to-entity statement made by this file."""

    source_id: str
    field: str          # dotted field path, e.g. lead_orgs[0], affiliations[1].org, body
    prop: str           # ontology property local name
    target_id: str
    line: int | None
    targets: tuple[str, ...] = ()   # allowed target types (empty for mentions)


@dataclass
class MappedEntity:
    id: str
    type: str
    path: str
    iri: NamedNode
    triples: list[Triple] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)   # frontmatter references
    mentions: list[Reference] = field(default_factory=list)     # entity links in prose and body
    tags: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    name: str | None = None
    blob: str = ""
    lines: dict[str, int] = field(default_factory=dict)
    source_data: bytes = b""    # the file's bytes (kept beside the store for text/markdown), not RDF
    last_updated: str | None = None
    stub: bool = False          # rebuilt from a build manifest: no triples, no source text

    def lines_of(self, field_path: str) -> int | None:
        return line_for(self.lines, field_path)


def is_entity_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ENTITY_ID.match(value))


_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]+(?:[/?#][^\s<>\"{}|\\^`]*)?$")


def is_http_url(value: object) -> bool:
    """True for an absolute http(s) URL that is also a valid IRI."""
    if not isinstance(value, str) or not _HTTP_URL.match(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        NamedNode(value)
    except ValueError:
        return False
    return True


class _Mapper:
    def __init__(self, record: EntityRecord, iris: DataIris):
        self.r = record
        self.iris = iris

    def problem(self, field_path: str | None, message: str, value: Any = None,
                severity: Severity = Severity.WARNING, rule: str = "") -> None:
        line = self.r.line(field_path) if field_path else None
        shown = None if value is None else (value if isinstance(value, str) else as_json(value))
        self.m.problems.append(Problem(self.r.path, line, field_path, message, shown, severity, rule))

    # -- entry point ---------------------------------------------------------
    def run(self) -> MappedEntity | None:
        data = self.r.data
        stem = self.r.path.rsplit("/", 1)[-1].removesuffix(".md")
        entity_id = data.get("id")
        type_name = data.get("type")
        directory = self.r.path.split("/")[1] if self.r.path.count("/") >= 2 else ""
        problems: list[Problem] = []
        if not isinstance(entity_id, str) or not entity_id.strip():
            problems.append(Problem(self.r.path, self.r.line("id"), "id",
                                    "missing or empty id; the file name is used in its place",
                                    None if entity_id is None else str(entity_id), rule="required"))
            entity_id = stem
        if not isinstance(type_name, str) or type_name not in schema.TYPES:
            by_dir = schema.BY_DIRECTORY.get(directory)
            if type_name is None and by_dir:
                problems.append(Problem(self.r.path, None, "type",
                                        f"missing type; the folder says {by_dir.name!r}", rule="required"))
                type_name = by_dir.name
            else:
                known = ", ".join(schema.TYPES)
                problems.append(Problem(self.r.path, self.r.line("type"), "type",
                                        f"unknown entity type (one of: {known}); entity not mapped",
                                        None if type_name is None else str(type_name), rule="unknown-type"))
                m = MappedEntity(entity_id, str(type_name), self.r.path, NamedNode(self.iris.entity(entity_id)))
                m.problems = problems
                return m
        etype = schema.TYPES[type_name]
        self.s = NamedNode(self.iris.entity(entity_id))
        self.m = MappedEntity(entity_id, type_name, self.r.path, self.s, problems=problems, blob=self.r.blob,
                              lines=self.r.lines)
        self.t = self.m.triples
        self.t.append(Triple(self.s, RDF_TYPE, P(etype.cls)))
        for key, value in data.items():
            key = str(key)
            if key == "type":
                continue
            f = etype.fields.get(key)
            if f is None:
                self.unknown_field(key, value, etype)
                continue
            self.field(self.s, f, key, value)
        self.body()
        return self.m

    # -- fields --------------------------------------------------------------
    def field(self, subject: NamedNode, f: Field, path: str, value: Any) -> None:
        if value is None or value == "" or value == []:
            return  # an empty field states nothing (the schema writes optional fields empty)
        handler = getattr(self, "k_" + f.kind.name.lower())
        handler(subject, f, path, value)

    def k_text(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if isinstance(value, (list, dict)):
            self.problem(path, "expected text, found a " + ("list" if isinstance(value, list) else "mapping")
                         + "; kept as JSON text", value, rule="wrong-shape")
            value = as_json(value)
        text = value if isinstance(value, str) else _scalar_text(value)
        if len(text) > MAX_TEXT:
            self.problem(path, f"value longer than {MAX_TEXT} characters; cut", text[:80], rule="too-long")
            text = text[:MAX_TEXT]
        if f.name == "name":
            self.m.name = text
            self.t.append(Triple(s, RDFS_LABEL, Literal(text)))
        self.t.append(Triple(s, P(f.prop), Literal(text)))
        if f.mentions_from_prose:
            self.prose_mentions(text, path)

    def k_date(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        try:
            d = typed_date(value)
        except NotADate as e:
            self.problem(path, f"{e}; kept as text", _scalar_text(value), rule="bad-date")
            self.t.append(Triple(s, P(f.prop), Literal(_scalar_text(value))))
            return
        self.t.append(Triple(s, P(f.prop), _date_literal(d)))
        if f.name == "last_updated" and s is self.s:
            self.m.last_updated = d.lexical

    def k_date_or_ongoing(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if isinstance(value, str) and value.strip().lower() == "ongoing":
            self.t.append(Triple(s, P("ongoing"), TRUE))
            return
        self.k_date(s, f, path, value)

    def k_url(self, s: NamedNode, f: Field, path: str, value: Any, contact_ok: bool = False) -> None:
        if is_http_url(value):
            self.t.append(Triple(s, P(f.prop), NamedNode(value)))
            return
        text = _scalar_text(value)
        looks_like_url = "://" in text or text.startswith("www.") or text.lower().startswith(("javascript:", "file:", "data:"))
        if not contact_ok or looks_like_url:
            self.problem(path, "not a valid http(s) URL; kept as text, not as a link", text, rule="bad-url")
        self.t.append(Triple(s, P(f.prop), Literal(text)))

    def k_url_or_contact(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        self.k_url(s, f, path, value, contact_ok=True)

    def k_vocab(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        allowed = schema.VOCABULARIES[f.vocab or ""]
        if isinstance(value, str) and value in allowed:
            self.t.append(Triple(s, P(f.prop), P(schema.concept(f.vocab or "", value))))
        else:  # kept as a literal, which the shapes report as outside the vocabulary
            self.t.append(Triple(s, P(f.prop), Literal(_scalar_text(value))))

    def reference(self, s: NamedNode, f: Field, path: str, value: Any, prop: str | None = None) -> None:
        if not isinstance(value, str) or schema.type_of_id(value.strip()) is None:
            self.problem(path, "expected an entity id (with a type prefix such as org-); kept as text",
                         value, Severity.VIOLATION, "bad-reference")
            self.t.append(Triple(s, P(prop or f.prop), Literal(_scalar_text(value))))
            return
        target = value.strip()
        self.t.append(Triple(s, P(prop or f.prop), NamedNode(self.iris.entity(target))))
        self.m.references.append(Reference(self.m.id, path, prop or f.prop, target,
                                           self.r.line(path), f.targets))

    def k_ref(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if isinstance(value, list):
            self.problem(path, "expected one entity id, found a list", value, Severity.VIOLATION, "wrong-shape")
            for i, v in enumerate(value):
                self.reference(s, f, f"{path}[{i}]", v)
            return
        self.reference(s, f, path, value)

    def k_refs(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if not isinstance(value, list):
            self.problem(path, "expected a list of entity ids, found a single value", value,
                         Severity.WARNING, "wrong-shape")
            value = [value]
        for i, v in enumerate(value):
            self.reference(s, f, f"{path}[{i}]", v)

    def k_ref_or_text(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if is_entity_id(value):
            self.reference(s, f, path, value)
        else:
            self.t.append(Triple(s, P(f.prop + "Name"), Literal(_scalar_text(value))))

    def k_tags(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        if not isinstance(value, list):
            self.problem(path, "expected a list of tags, found a single value; read as one tag",
                         value, rule="wrong-shape")
            value = [value]
        for i, tag in enumerate(value):
            if isinstance(tag, (list, dict)) or tag is None:
                self.problem(f"{path}[{i}]", "a tag must be a word or a number", tag, rule="bad-tag")
                continue
            label = _scalar_text(tag).strip()
            if not label:
                continue
            self.m.tags.append(label)
            self.t.append(Triple(s, P(f.prop), NamedNode(self.iris.tag(label))))

    def items(self, path: str, value: Any, what: str) -> list[dict]:
        if not isinstance(value, list):
            value = [value]
            self.problem(path, f"expected a list of {what}", value, rule="wrong-shape")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append(item)
            else:
                self.problem(f"{path}[{i}]", f"expected a mapping ({what} fields), found a plain value; "
                             "kept as text", item, Severity.VIOLATION, "wrong-shape")
                out.append({"note" if what == "sources" else "description": item})
        return out

    def nested(self, owner: NamedNode, f: Field, path: str, value: Any, what: str, cls: str, fragment: str,
               fields: dict[str, str], extra: Any = None) -> None:
        for i, item in enumerate(self.items(path, value, what), start=1):
            node = NamedNode(self.iris.part(self.m.id, f"{fragment}-{i}"))
            base = f"{path}[{i - 1}]"
            self.t.append(Triple(owner, P(f.prop), node))
            self.t.append(Triple(node, RDF_TYPE, P(cls)))
            for key, v in item.items():
                key = str(key)
                sub = f"{base}.{key}"
                if v is None or v == "":
                    continue
                prop = fields.get(key)
                if prop is None:
                    self.unknown_nested(node, sub, key, v)
                    continue
                extra(node, key, prop, sub, v) if extra else None

    def k_sources(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        def one(node: NamedNode, key: str, prop: str, sub: str, v: Any) -> None:
            if key == "url":
                self.k_url(node, Field(key, prop, Kind.URL), sub, v)
            elif key == "last_checked":
                self.k_date(node, Field(key, prop, Kind.DATE), sub, v)
            else:
                self.k_text(node, Field(key, prop, Kind.TEXT), sub, v)
        self.nested(s, f, path, value, "sources", "SourceCitation", "source", schema.SOURCE_FIELDS, one)

    def k_affiliations(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        def one(node: NamedNode, key: str, prop: str, sub: str, v: Any) -> None:
            if key == "org":
                if not is_entity_id(v):
                    self.reference(node, Field(key, prop, Kind.REF, schema.ORG_TYPES), sub, v)
                    return
                target = NamedNode(self.iris.entity(v))
                self.t.append(Triple(node, P(prop), target))
                # the shortcut person -> organisation, so one-hop queries need no n-ary walk
                self.t.append(Triple(s, P("affiliatedWith"), target))
                self.m.references.append(Reference(self.m.id, sub, "affiliatedWith", v,
                                                   self.r.line(sub), schema.ORG_TYPES))
            elif key == "period":
                self.t.append(Triple(node, P(prop), Literal(_scalar_text(v))))
                start, end = period_bounds(v)
                if start:
                    self.t.append(Triple(node, P("startDate"), _date_literal(start)))
                if end:
                    self.t.append(Triple(node, P("endDate"), _date_literal(end)))
            else:
                self.k_text(node, Field(key, prop, Kind.TEXT), sub, v)
        self.nested(s, f, path, value, "affiliations", "Affiliation", "affiliation",
                    schema.AFFILIATION_FIELDS, one)

    def k_profiles(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        def one(node: NamedNode, key: str, prop: str, sub: str, v: Any) -> None:
            if key == "url":
                self.k_url(node, Field(key, prop, Kind.URL), sub, v)
            else:
                self.k_text(node, Field(key, prop, Kind.TEXT), sub, v)
        self.nested(s, f, path, value, "public profiles", "PublicProfile", "profile", schema.PROFILE_FIELDS, one)

    def k_effects(self, s: NamedNode, f: Field, path: str, value: Any) -> None:
        def one(node: NamedNode, key: str, prop: str, sub: str, v: Any) -> None:
            if key == "source":
                self.k_url(node, Field(key, prop, Kind.URL), sub, v)
            elif key == "type":
                self.k_vocab(node, Field(key, prop, Kind.VOCAB, vocab="effect-type"), sub, v)
            elif key == "attribution_confidence":
                self.k_vocab(node, Field(key, prop, Kind.VOCAB, vocab="confidence"), sub, v)
            else:
                self.k_text(node, Field(key, prop, Kind.TEXT, mentions_from_prose=True), sub, v)
        self.nested(s, f, path, value, "effects", "StrategyEffect", "effect", schema.EFFECT_FIELDS, one)

    # -- what the schema does not know ---------------------------------------
    def unknown_field(self, key: str, value: Any, etype: schema.EntityType) -> None:
        known = schema.any_field_named(key)
        if known is not None and value not in (None, "", []):
            self.problem(key, f"field is not in the schema for type {etype.name}; mapped as on "
                         "the type that declares it", None, rule="unknown-field")
            self.field(self.s, known, key, value)
            return
        self.problem(key, f"field is not in the schema for type {etype.name}; kept under mgx:{_safe_local(key)}",
                     value if value not in (None, "") else None, rule="unknown-field")
        self.generic(self.s, key, value)

    def unknown_nested(self, node: NamedNode, path: str, key: str, value: Any) -> None:
        self.problem(path, f"field is not in the schema; kept under mgx:{_safe_local(key)}", value,
                     rule="unknown-field")
        self.generic(node, key, value)

    def generic(self, s: NamedNode, key: str, value: Any) -> None:
        prop = NamedNode(MGX + _safe_local(key))
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            self.t.append(Triple(s, prop, _generic_literal(v)))

    # -- prose ----------------------------------------------------------------
    def prose_mentions(self, text: str, path: str) -> None:
        for link in entity_links(text, self.r.path):
            self.m.mentions.append(Reference(self.m.id, path, "mentions", link.entity_id,
                                             self.r.line(path), ()))

    def body(self) -> None:
        body = self.r.body
        if len(body) > MAX_TEXT:
            self.problem(None, f"body longer than {MAX_TEXT} characters; the rest is not kept", rule="too-long")
            body = body[:MAX_TEXT]
        stripped = body.strip("\n")
        if stripped:
            self.t.append(Triple(self.s, P("body"), Literal(stripped)))
        for link in entity_links(body, self.r.path):
            line = line_of(body, link.offset, self.r.body_line)
            self.m.mentions.append(Reference(self.m.id, "body", "mentions", link.entity_id, line, ()))
            if link.entity_id == self.m.id:
                continue
            expected = schema.type_of_id(link.entity_id)
            if expected and expected.directory != link.directory:
                self.m.problems.append(Problem(self.r.path, line, "body",
                                               f"link goes through entities/{link.directory}/ but "
                                               f"{link.entity_id} belongs in entities/{expected.directory}/",
                                               link.href, Severity.WARNING, "link-wrong-directory"))
        first = next((ln for ln in stripped.splitlines() if ln.strip()), "")
        name = self.r.data.get("name")
        if isinstance(name, str) and first.startswith("# ") and first[2:].strip() != name.strip():
            self.m.problems.append(Problem(self.r.path, self.r.line("name"), "name",
                                           "name differs from the body's H1", first[2:].strip(),
                                           Severity.WARNING, "name-h1-mismatch"))


_DATATYPES: dict[str, NamedNode] = {}


def _date_literal(d: TypedDate) -> Literal:
    dtype = _DATATYPES.get(d.datatype)
    if dtype is None:
        dtype = _DATATYPES[d.datatype] = NamedNode(d.datatype)
    return Literal(d.lexical, datatype=dtype)


def _plain(value: Any) -> Any:
    """YAML values as JSON can hold them: mapping keys of any type become strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def as_json(value: Any) -> str:
    """A YAML value as compact, key-sorted JSON text (how unexpected shapes are kept as text)."""
    return json.dumps(_plain(value), ensure_ascii=False, default=str, sort_keys=True)


def _safe_local(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", key) or "_"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return as_json(value)
    return str(value)


def _generic_literal(v: Any) -> Literal:
    if isinstance(v, bool):
        return Literal("true" if v else "false", datatype=XSD_BOOLEAN)
    if isinstance(v, int):
        return Literal(str(v), datatype=XSD_INTEGER)
    if isinstance(v, float):
        return Literal(repr(v), datatype=XSD_DOUBLE)
    return Literal(_scalar_text(v)[:MAX_TEXT])


def map_entity(record: EntityRecord, iris: DataIris) -> MappedEntity:
    """Map one record to RDF. Problems are returned on the result, never raised."""
    return _Mapper(record, iris).run()  # type: ignore[return-value]
