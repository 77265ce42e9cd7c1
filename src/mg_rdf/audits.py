"""The corpus's claim-level audit trail (``audits/<entity-id>.md``) as RDF.

``read_audit``: one file -> ``AuditRecord`` (frontmatter, the line of each key,
claim sections with the line of each field). ``map_audit``: record -> triples,
pure. ``audit_graphs``: a whole source -> quads, one named graph per audit file
with the provenance entity graphs carry. ``audit_totals``: RELIABILITY.md's
figures from a store. Nothing raises on bad input; problems name file and line.

What the corpus's history taught the reader (all 1,501 audit blobs in the bundle):
- two vocabularies: verified / discrepancy / unverifiable until 2026-06-10 (v1.0.0),
  corroborated / primary-sourced / single-source / uncorroborated / correction since.
- a claim is a ``##`` section with a ``Decision:`` line: ``Claim 12:``, ``Claim 11a:``,
  ``Claim 23 (frontmatter scalar): …``, or no number at all (``## scalar:notable_for``);
  sections without a decision (``## Note on …``) are notes on the audit.
- keys and decisions may carry qualifiers (``Source content (pass 2):``,
  ``corroborated (for date 7 March 2025)``): the first word decides, the rest is kept.
- ``Source:`` holds URLs joined by ``;``, ``and``, ``+`` or spaces, prose ("no canonical
  source found") or corpus paths (``product/entities/…/org-x.md``).
- the frontmatter counts differ from the claim sections in 62 files at HEAD, and
  RELIABILITY.md sums the frontmatter: both are kept, with a warning per file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pyoxigraph import Literal, NamedNode, Quad, Store, Triple

from .config import QUERIES_DIR
from .dates import NotADate, typed_date
from .integrity import CorpusIndex
from .mapping import RDF_TYPE, RDFS_LABEL, TRUE, XSD_BOOLEAN, XSD_INTEGER, P, is_entity_id, is_http_url
from .problems import Problem, Severity
from .reader import line_for, read_entity
from .source import CorpusSource, Provenance, SourceFile
from .vocab import MGX, PROV, DataIris, _segment

# decision word -> (concept, frontmatter count key); the concepts are in ontology/mg-audit.ttl
DECISIONS: dict[str, tuple[str, str]] = {
    "corroborated": ("decision-corroborated", "claims_corroborated"),
    "primary-sourced": ("decision-primary-sourced", "claims_primary_sourced"),
    "single-source": ("decision-single-source", "claims_single_source"),
    "uncorroborated": ("decision-uncorroborated", "claims_uncorroborated"),
    "correction": ("decision-correction", "open_corrections"),
    "verified": ("decision-verified", "claims_verified"),          # the words before 2026-06-10
    "discrepancy": ("decision-discrepancy", "claims_discrepancy"),
    "unverifiable": ("decision-unverifiable", "claims_unverifiable"),
}
TIERS = ("primary", "mainstream", "database", "tiebreaker", "caution", "none")
STATUSES = ("corroborated", "supported", "corrections-pending", "verified", "discrepancy", "unverifiable")
_PROPERTY = {   # frontmatter key -> ontology property (None: used for the IRIs)
    "entity_id": None, "entity_hash": "auditedBlob", "audit_date": "auditDate", "pass": "auditPass",
    "status": "auditStatus", "claims_total": "claimsTotal", "claims_corroborated": "claimsCorroborated",
    "claims_primary_sourced": "claimsPrimarySourced", "claims_single_source": "claimsSingleSource",
    "claims_uncorroborated": "claimsUncorroborated", "open_corrections": "openCorrections",
    "claims_verified": "claimsVerified", "claims_discrepancy": "claimsDiscrepancy",
    "claims_unverifiable": "claimsUnverifiable", "sources_consulted": "sourceConsulted",
    "reclassified_at": "reclassifiedAt",
}
_INTEGER_KEYS = {"pass", "claims_total", *(key for _, key in DECISIONS.values())}
_REQUIRED = ("entity_id", "entity_hash", "audit_date", "status", "claims_total")
_FIELD_KEYS = frozenset(("source", "source tier", "source content", "comparison", "decision"))
_FIELD_START = frozenset("SCDscd* \t")

_CLAIM_HEAD = re.compile(r"^Claim\s+(\d+[A-Za-z]?)\b\s*(.*)$", re.IGNORECASE)
_FIELD = re.compile(r"^\**\s*(source tier|source content|source|comparison|decision)\s*(?:\(([^)]*)\))?\s*:"
                    r"\**\s*(.*?)\s*$", re.IGNORECASE)
_WORD = re.compile(r"^[`*_\"']*([A-Za-z][A-Za-z-]*)[`*_\"'.,;:]*\s*(.*)$", re.DOTALL)
_URL = re.compile(r"https?://[^\s<>\"'`\]]+")
_ENTITY_PATH = re.compile(r"(?:\bproduct/)?\bentities/[a-z-]+/([a-z0-9][a-z0-9-]*)\.md\b")
_SEPARATORS = re.compile(r"^(?:[\s;,.+&]|and\b|AND\b)*$")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class ClaimSection:
    """One ``##`` section of an audit that carries a decision (or is headed ``Claim N``)."""

    label: str | None           # "12", "11a"; None when the heading has no number
    order: int                  # 1-based position among the file's claims
    text: str                   # the heading after "Claim N", as written
    line: int                   # line of the heading in the file
    fields: dict[str, str] = field(default_factory=dict)     # "source", "source tier", … -> value
    field_lines: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)           # the section's other lines (paragraphs)

    @property
    def fragment(self) -> str:
        return f"claim-{self.label}" if self.label else f"claim-at-{self.order}"

    @property
    def name(self) -> str:
        return f"Claim {self.label}" if self.label else f"claim section at line {self.line}"


@dataclass
class AuditRecord:
    """One audit file as read."""

    path: str
    blob: str
    data: dict[str, Any]
    lines: dict[str, int]                                   # frontmatter key -> line
    claims: list[ClaimSection] = field(default_factory=list)
    notes: str = ""                                         # prose outside the claim sections
    stem: str = ""                                          # file name without .md

    @property
    def entity_id(self) -> str:
        v = self.data.get("entity_id")
        return v.strip() if isinstance(v, str) and v.strip() else self.stem

    def line(self, key: str) -> int | None:
        return line_for(self.lines, key)


@dataclass
class AuditRead:
    record: AuditRecord | None
    problems: list[Problem]


def read_audit(source: SourceFile) -> AuditRead:
    """Read one audit file; ``record`` is None only when its frontmatter cannot be read."""
    result = read_entity(source)   # the entity files' frontmatter rules: YAML 1.2, no aliases, lines
    if result.record is None:
        return AuditRead(None, result.problems)
    r = result.record
    record = AuditRecord(source.path, source.blob, r.data, r.lines,
                         stem=source.path.rsplit("/", 1)[-1].removesuffix(".md"))
    problems = list(result.problems)
    _read_body(record, r.body, r.body_line, problems)
    return AuditRead(record, problems)


def _read_body(record: AuditRecord, body: str, first_line: int, problems: list[Problem]) -> None:
    notes: list[str] = []
    section: ClaimSection | None = None
    headed_claim = False
    labels: dict[str, int] = {}

    def problem(line: int, where: str, message: str, severity: Severity, rule: str, value: str | None = None):
        problems.append(Problem(record.path, line, where, message, value, severity, rule))

    def close() -> None:
        if section is None:
            return
        if "decision" not in section.fields and not headed_claim:
            # a note on the audit; the corpus writes a paragraph per line, and blank lines were skipped
            notes.append("\n\n".join([f"## {section.text}", *section.notes]))
            return
        section.order = len(record.claims) + 1
        if section.label in labels:
            problem(section.line, section.name, f"claim number used twice (first on line {labels[section.label]}); "
                    "kept as a claim of its own", Severity.WARNING, "audit-duplicate-claim")
            section.label = f"{section.label}-{section.order}"
        elif section.label is not None:
            labels[section.label] = section.line
        if "decision" not in section.fields:
            problem(section.line, section.name, "claim section has no 'Decision:' line", Severity.VIOLATION,
                    "audit-no-decision")
        record.claims.append(section)

    for n, line in enumerate(body.split("\n"), start=first_line):
        if not line and section is not None:      # half the lines: skipped before any other test
            continue
        if line.startswith("##") and not line.startswith("###"):
            close()
            heading = line[2:].strip()
            m = _CLAIM_HEAD.match(heading)
            headed_claim = m is not None
            section = ClaimSection(m.group(1) if m else None, 0,
                                   re.sub(r"^[:.\-—–]\s*", "", m.group(2)) if m else heading, n)
            continue
        if section is None:
            notes.append(line)
            continue
        f = _field(line) if line[0] in _FIELD_START else None
        if f is None:
            if line.strip():
                section.notes.append(line.rstrip())
            continue
        key, qualifier, value = f
        if qualifier and key not in ("decision", "source tier"):   # "Source content (pass 2): …"
            value = f"({qualifier}) {value}"
        if key not in section.fields:
            section.fields[key], section.field_lines[key] = value, n
        elif key == "decision":
            problem(n, f"{section.name} Decision", f"second 'Decision:' line (the one on line "
                    f"{section.field_lines[key]} is kept)", Severity.VIOLATION, "audit-two-decisions", value)
        else:
            section.fields[key] += "\n" + value
    close()
    record.notes = "\n".join(notes).strip()


def _field(line: str) -> tuple[str, str | None, str] | None:
    """``(key, qualifier, value)`` of a field line such as ``Source content (pass 2): "…"``.

    String operations, not one regex: this runs on ~100k lines, and the regex cost more
    than all the rest of the reading."""
    head, sep, value = line.partition(":")
    if not sep or len(head) > 60:
        return None
    key, qualifier = head.strip("* \t").lower(), None
    if key.endswith(")") and "(" in key:
        key = key[:key.index("(")].strip()
        qualifier = head[head.index("(") + 1:head.rindex(")")]
    elif "(" in key:   # a qualifier that holds a ':' itself: rare, so the regex can afford it
        m = _FIELD.match(line)
        return (m.group(1).lower(), m.group(2), m.group(3)) if m else None
    return (key, qualifier, value.strip("* \t")) if key in _FIELD_KEYS else None


# -- mapping -------------------------------------------------------------------------------------

def audit_iri(iris: DataIris, entity_id: str) -> str:
    """``{BASE}audit/{id}``: an audit is a document of its own with its own life (it goes stale while
    the entity lives on), so not a fragment of the entity's IRI; its claims are ``#claim-N``."""
    return f"{iris.base}audit/{_segment(entity_id)}"


def audit_graph_iri(iris: DataIris, entity_id: str) -> str:
    return f"{iris.base}graph/audit/{_segment(entity_id)}"


PROV_GENERATED_BY = NamedNode(PROV + "wasGeneratedBy")
FALSE = Literal("false", datatype=XSD_BOOLEAN)
Statement = Triple | Quad
Add = Callable[[NamedNode, NamedNode, "NamedNode | Literal"], None]


@lru_cache(maxsize=4096)
def _integer(value: int) -> Literal:
    return Literal(str(value), datatype=XSD_INTEGER)


@lru_cache(maxsize=65536)
def _is_url(url: str) -> bool:
    return is_http_url(url)   # cached: an audit cites the same few pages again and again


def map_audit(record: AuditRecord, iris: DataIris, entity_blobs: dict[str, str], *,
              graph: NamedNode | None = None) -> tuple[list[Statement], list[Problem]]:
    """The triples of one audit and its claims, and the problems found on the way.

    ``entity_blobs``: every entity id of the same corpus version -> its file's git blob hash. An
    audit whose ``entity_hash`` does not start that hash is stale, and so is an audit of an entity
    the version does not have (reported). With ``graph``, quads in that graph are returned instead
    of triples: the build's way, since allocating the statements is most of the mapping's cost.
    """
    out: list[Statement] = []
    add: Add = ((lambda s, p, o: out.append(Triple(s, p, o))) if graph is None
                else (lambda s, p, o: out.append(Quad(s, p, o, graph))))
    problems: list[Problem] = []

    def problem(key: str | None, message: str, value: Any = None, severity: Severity = Severity.VIOLATION,
                rule: str = "audit-field", line: int | None = None) -> None:
        problems.append(Problem(record.path, line or (record.line(key) if key else None), key, message,
                                None if value is None else str(value), severity, rule))

    for key in _REQUIRED:
        if record.data.get(key) in (None, ""):
            problem(key, "required in an audit's frontmatter", rule="audit-required", line=1)
    entity_id, raw = record.entity_id, record.data.get("entity_id")
    if raw not in (None, "") and not isinstance(raw, str):
        problem("entity_id", "not an entity id; the file name is used in its place", raw)
    elif not is_entity_id(entity_id):
        problem("entity_id", "not an entity id", entity_id)
    elif entity_id != record.stem:
        problem("entity_id", f"differs from the file name ({record.stem}.md)", entity_id, Severity.WARNING,
                "audit-file-name")
    audit, entity = NamedNode(audit_iri(iris, entity_id)), NamedNode(iris.entity(entity_id))
    add(audit, RDF_TYPE, P("Audit"))
    add(audit, RDFS_LABEL, Literal(f"Audit of {entity_id}"))
    add(audit, P("auditOf"), entity)
    current = entity_blobs.get(entity_id)
    if current is not None:
        add(entity, P("audit"), audit)   # the reverse lives in the graph of the file that states it
    else:
        problem("entity_id", "audit of an entity this corpus version does not have; marked stale", entity_id,
                Severity.WARNING, "audit-orphan")
        add(audit, P("stale"), TRUE)
    links = _Links(iris, entity_blobs)
    for key, value in record.data.items():
        _frontmatter_field(str(key), value, audit, current, add, problem, links)
    if record.notes:
        add(audit, P("auditNotes"), Literal(record.notes))
    decided = Counter(_map_claim(c, audit, add, problem, links) for c in record.claims)
    _check_counts(record, decided, problem)
    return out, problems


class _Links:
    """The links a text holds: valid http(s) URLs, and paths of entity files this version has."""

    def __init__(self, iris: DataIris, entity_blobs: dict[str, str]):
        self.iris, self.known = iris, entity_blobs

    def __call__(self, text: str) -> tuple[list[NamedNode], bool]:
        """The links, and whether the text says anything besides them."""
        found: list[str] = []
        rest = text
        if "http" in text:
            for raw in _URL.findall(text):
                url = raw.rstrip(".,;:!?*")
                while url.endswith(")") and url.count(")") > url.count("("):   # "(see https://…)"
                    url = url[:-1].rstrip(".,;:!?*")
                if _is_url(url) and url not in found:
                    found.append(url)
                    rest = rest.replace(url, " ")
        nodes = [NamedNode(u) for u in found]
        if "entities/" in text:
            for m in _ENTITY_PATH.finditer(text):
                if m.group(1) in self.known:
                    nodes.append(NamedNode(self.iris.entity(m.group(1))))
                    rest = rest.replace(m.group(0), " ")
        return nodes, not _SEPARATORS.match(rest)


def _frontmatter_field(key: str, value: Any, audit: NamedNode, current: str | None, add: Add,
                       problem: Callable[..., None], links: _Links) -> None:
    prop = _PROPERTY.get(key, "")
    if prop is None or value is None or value == "":
        return
    if not prop:
        problem(key, "unknown audit frontmatter key; kept under mgx:", value, Severity.WARNING, "unknown-field")
        add(audit, NamedNode(MGX + re.sub(r"[^\w-]", "_", key)), Literal(str(value)))
    elif key in _INTEGER_KEYS:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            add(audit, P(prop), _integer(value))
        else:
            problem(key, "expected a whole number of at least 0; kept as text", value)
            add(audit, P(prop), Literal(str(value)))
    elif key in ("audit_date", "reclassified_at"):
        try:
            d = typed_date(value)
            if not d.datatype.endswith("#date"):
                raise NotADate("expected a full date (YYYY-MM-DD)")
            add(audit, P(prop), Literal(d.lexical, datatype=NamedNode(d.datatype)))
        except NotADate as e:
            problem(key, f"{e}; kept as text", value, rule="bad-date")
            add(audit, P(prop), Literal(str(value)))
    elif key == "status":
        if value in STATUSES:
            add(audit, P(prop), P("audit-status-" + value))
        else:
            problem(key, f"unknown audit status (one of: {', '.join(STATUSES)}); kept as text", value,
                    rule="audit-vocabulary")
            add(audit, P(prop), Literal(str(value)))
    elif key == "sources_consulted":
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            nodes, words = links(str(item))
            for node in nodes:
                add(audit, P(prop), node)
            if not nodes:
                problem(f"sources_consulted[{i}]", "neither an http(s) URL nor an entity of this corpus version; "
                        "kept as text", item, Severity.WARNING, "bad-url")
            if words:   # "https://… (HTTP 403 pass 3)": the words are kept too
                add(audit, P("sourceConsultedNote"), Literal(str(item)))
    elif key == "entity_hash":
        blob = str(value).strip().lower()
        add(audit, P(prop), Literal(blob))
        if not _HEX.match(blob):
            problem(key, "not a git blob hash (7 to 40 hexadecimal digits)", value)
        elif current is not None:
            add(audit, P("stale"), FALSE if current.startswith(blob) else TRUE)


def _map_claim(c: ClaimSection, audit: NamedNode, add: Add, problem: Callable[..., None], links: _Links) -> str:
    """The statements of one claim; returns its decision word ('' when it has no known one)."""
    node = NamedNode(f"{audit.value}#{c.fragment}")
    add(node, RDF_TYPE, P("ClaimAssessment"))
    add(node, PROV_GENERATED_BY, audit)
    add(node, P("lineNumber"), _integer(c.line))
    if c.text:
        add(node, P("claimText"), Literal(c.text))
    word = ""
    for key, prop, words, concept in (("decision", "decision", DECISIONS, "decision-"),
                                      ("source tier", "sourceTier", TIERS, "source-tier-")):
        if (value := c.fields.get(key)) is None:
            continue
        m = _WORD.match(value)
        found, note = (m.group(1).lower(), m.group(2).strip()) if m else ("", value)
        if found in words:
            add(node, P(prop), P(concept + found))
            if note and key == "decision":
                add(node, P("decisionNote"), Literal(note))
            word = found if key == "decision" else word
        else:
            problem(f"{c.name} {key.capitalize()}", f"unknown {key} (one of: {', '.join(words)}); kept as text",
                    value, rule="audit-vocabulary", line=c.field_lines[key])
            add(node, P(prop), Literal(value))
    if (source := c.fields.get("source")) is not None:
        nodes, words = links(source)
        for target in nodes:
            add(node, P("claimSource"), target)
        if words:   # more than links: "no canonical source found", "(HTTP 403)"
            add(node, P("sourceText"), Literal(source))
    for key, prop in (("source content", "sourceContent"), ("comparison", "comparison")):
        if c.fields.get(key):
            add(node, P(prop), Literal(c.fields[key]))
    if c.notes:
        add(node, P("claimNote"), Literal("\n\n".join(c.notes)))
    return word


def _check_counts(record: AuditRecord, decided: Counter[str], problem: Callable[..., None]) -> None:
    """The declared counts against claims_total, the status and the claim sections (warnings)."""
    data = record.data
    counts = {key: data[key] for _, key in DECISIONS.values()
              if isinstance(data.get(key), int) and not isinstance(data.get(key), bool)}
    total = data.get("claims_total")
    if isinstance(total, int) and counts and sum(counts.values()) != total:
        problem("claims_total", f"the decision counts add up to {sum(counts.values())}, not claims_total",
                total, Severity.WARNING, "audit-count-mismatch")
    if data.get("status") in STATUSES[:3] and counts:
        expected = ("corrections-pending" if counts.get("open_corrections") else "supported"
                    if counts.get("claims_single_source") or counts.get("claims_uncorroborated") else "corroborated")
        if data["status"] != expected:
            problem("status", f"the counts make this audit {expected!r}", data["status"], Severity.WARNING,
                    "audit-status-mismatch")
    differ = [(w, key) for w, (_, key) in DECISIONS.items() if key in counts and counts[key] != decided[w]]
    if differ:
        shown = ", ".join(f"{key} {counts[key]} vs {decided[w]}" for w, key in differ)
        problem(min((k for _, k in differ), key=lambda k: record.line(k) or 0),
                f"frontmatter claim counts differ from the claim sections' decisions: {shown} sections",
                None, Severity.WARNING, "audit-count-mismatch")


# -- the build's view ------------------------------------------------------------------------------

def audit_graphs(source: CorpusSource, index: CorpusIndex, iris: DataIris,
                 problems: list[Problem]) -> Iterator[Quad]:
    """Every audit file of ``source`` as quads, one named graph ``{BASE}graph/audit/{id}`` each, with
    the file's provenance; staleness is judged against the entities of ``index`` (the same corpus
    version). Problems go into ``problems``. (The build uses ``audit_cache.audit_pass``, which can
    also skip the audits whose inputs did not change.)"""
    from .audit_cache import audit_pass

    outcome = audit_pass(source, index, iris)
    problems.extend(outcome.problems)
    yield from outcome.quads


def _provenance(g: NamedNode, audit: NamedNode, f: SourceFile, provenance: Provenance) -> list[Quad]:
    out = [Quad(g, RDF_TYPE, P("AuditGraph"), g), Quad(g, RDF_TYPE, NamedNode(PROV + "Entity"), g),
           Quad(g, P("describesAudit"), audit, g), Quad(g, P("sourcePath"), Literal(f.path), g),
           Quad(g, P("sourceBlob"), Literal(f.blob), g)]
    if provenance.commit:
        out.append(Quad(g, P("corpusCommit"), Literal(provenance.commit), g))
        if url := provenance.file_url(f.path):
            out.append(Quad(g, NamedNode(PROV + "wasDerivedFrom"), NamedNode(url), g))
    return out


def audit_totals(store: Store) -> dict[str, int | None]:
    """RELIABILITY.md's figures (audited_entities, total_entities, audit_coverage_pct, total_claims,
    claims_*, open_corrections, status_*) and stale_audits, from the named query ``audit-totals``
    (its header is SPARQL comments, so the file runs as it is: one query for API, CLI and pages)."""
    solutions = store.query((QUERIES_DIR / "audit-totals.rq").read_text(encoding="utf-8"),
                            use_default_graph_as_union=True)
    names = [v.value for v in solutions.variables]
    row = next(iter(solutions), None)
    return {n: int(row[n].value) if row is not None and row[n] is not None else None for n in names}
