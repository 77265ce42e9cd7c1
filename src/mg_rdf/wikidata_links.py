"""The reviewed mapping from entity ids to Wikidata items, and the links the build makes of it.

The mapping is data kept in the repository, ``data/wikidata-links.tsv``: one
row per (entity, Wikidata item) pair, tab-separated, with these columns:

``entity_id``       the corpus id (``org-edri``)
``qid``             the Wikidata item (``Q123``)
``status``          ``proposed`` (written by ``mg-rdf reconcile``, not yet looked at),
                    ``accepted`` or ``rejected`` (a person reviewed it)
``match``           how the candidate was found: ``website+label``, ``website`` or ``label``
                    (by reconcile), or ``cited-source`` (the entity file cites the item itself)
``confidence``      ``high``, ``medium``, ``low`` or ``ambiguous`` (several items fit)
``evidence``        what matched, in words (the official website, the label)
``wikidata_label``  the item's English label and description when it was proposed
``reviewer``        who accepted or rejected it (required once reviewed)
``reviewed_on``     when (YYYY-MM-DD)
``note``            anything the reviewer wants to add

Lines starting with ``#`` before the header are comments and are kept. Only
``accepted`` rows become links: ``owl:sameAs`` and ``schema:sameAs`` from the
entity IRI to ``http://www.wikidata.org/entity/Q…``, in the named graph
``{BASE}graph/wikidata-links``. That graph describes itself as a VoID linkset
derived from this file (path and git blob hash), and each link as an
``rdf:Statement`` carrying its review (who, when, on what evidence), so every
``owl:sameAs`` can be traced to the person who accepted it.

Rows that break the rules are reported (``link_problems``) and left out; the
rest are still published, as the build does with entity files.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyoxigraph import Literal, NamedNode, Quad

from .config import PROJECT_ROOT
from .integrity import CorpusIndex
from .mapping import is_entity_id
from .problems import Problem, Severity
from .vocab import DCT, OWL, PROV, RDF, SCHEMA, VOID, WD, XSD, DataIris

LINKS_PATH = PROJECT_ROOT / "data" / "wikidata-links.tsv"
# The Wikidata Query Service: what reconcile asks, and the SERVICE endpoint a server allows by default.
WIKIDATA_QUERY_SERVICE = "https://query.wikidata.org/sparql"
# reconcile's defaults, here so that the command line can show them without importing reconcile
# (and requests, ~0.1 s) on every command
RECONCILE_BATCH = 50
RECONCILE_TIMEOUT = 60.0     # the Wikidata Query Service stops queries after 60 s itself
COLUMNS = ("entity_id", "qid", "status", "match", "confidence", "evidence", "wikidata_label",
           "reviewer", "reviewed_on", "note")
STATUSES = ("proposed", "accepted", "rejected")
REVIEWED = ("accepted", "rejected")
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2, "ambiguous": 3, "": 4}
WIKIDATA = WD + "Q2013"   # the Wikidata item for Wikidata itself: the linkset's objects target
_QID = re.compile(r"^Q[1-9][0-9]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class LinkRow:
    """One row of the mapping, as written (``raw`` is the line without its newline)."""

    entity_id: str
    qid: str
    status: str = "proposed"
    match: str = ""
    confidence: str = ""
    evidence: str = ""
    wikidata_label: str = ""
    reviewer: str = ""
    reviewed_on: str = ""
    note: str = ""
    line: int | None = None
    raw: str | None = None     # kept so that a reviewed row is written back byte for byte
    malformed: bool = False    # could not be read as a row; reported, and written back as it was

    @property
    def reviewed(self) -> bool:
        return self.status in REVIEWED

    def to_line(self) -> str:
        """The row as one TSV line: the original text when it was read, else its fields."""
        if self.raw is not None:
            return self.raw
        return "\t".join(_cell(getattr(self, c)) for c in COLUMNS)


@dataclass
class LinkFile:
    path: Path
    comments: list[str] = field(default_factory=list)
    rows: list[LinkRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    blob: str = ""             # git blob hash of the file as read
    unreadable: bool = False   # not UTF-8, or no header: no row could be read


def _cell(value: str) -> str:
    # A tab or a line break would split the row; evidence comes from remote labels, so flatten it.
    return re.sub(r"[\t\r\n]+", " ", value or "").strip()


def display_path(path: Path) -> str:
    """The file's path as problems name it: relative to the project when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def read_links(path: Path) -> LinkFile:
    """Read the mapping. A missing file is an empty mapping; malformed rows become problems."""
    path = Path(path)
    out = LinkFile(path)
    if not path.exists():
        return out
    data = path.read_bytes()
    out.blob = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()
    shown = display_path(path)

    def problem(line: int | None, fld: str | None, message: str, value: str | None,
                severity: Severity = Severity.VIOLATION, rule: str = "wikidata-link") -> None:
        out.problems.append(Problem(shown, line, fld, message, value, severity, rule))

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        problem(None, None, f"not UTF-8 text ({e.reason} at byte {e.start}); no link is read", None)
        out.unreadable = True
        return out
    header_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if not header_seen:
            if raw.startswith("#") or not raw.strip():
                out.comments.append(raw)
                continue
            if tuple(c.strip() for c in raw.split("\t")) != COLUMNS:
                problem(number, None, "the first line that is not a comment must be the header: "
                        + "<TAB>".join(COLUMNS) + "; no link is read", raw)
                out.unreadable = True
                return out
            header_seen = True
            continue
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if len(cells) < 3 or len(cells) > len(COLUMNS):
            problem(number, None, f"a row needs {len(COLUMNS)} tab-separated columns (at least entity_id, qid "
                    f"and status), not {len(cells)}", raw)
            out.rows.append(LinkRow(cells[0].strip(), cells[1].strip() if len(cells) > 1 else "", "",
                                    line=number, raw=raw, malformed=True))
            continue
        values = dict(zip(COLUMNS, (c.strip() for c in cells)))
        out.rows.append(LinkRow(**{c: values.get(c, "") for c in COLUMNS}, line=number, raw=raw))
    return out   # only comments (or nothing): an empty mapping


def check_rows(links: LinkFile, index: CorpusIndex | None = None) -> tuple[list[LinkRow], list[Problem]]:
    """The rows that may become links (accepted and valid), and every problem of the file."""
    shown = display_path(links.path)
    problems = list(links.problems)

    def problem(row: LinkRow, fld: str | None, message: str, value: str | None,
                severity: Severity = Severity.VIOLATION) -> None:
        problems.append(Problem(shown, row.line, fld, message, value, severity, "wikidata-link"))

    valid: list[LinkRow] = []
    seen: set[tuple[str, str]] = set()
    for row in links.rows:
        if row.malformed:
            continue   # reported when read
        ok = True
        if not is_entity_id(row.entity_id):
            problem(row, "entity_id", "not an entity id", row.entity_id)
            ok = False
        if not _QID.match(row.qid):
            problem(row, "qid", "not a Wikidata item id (Q followed by digits)", row.qid)
            ok = False
        if row.status not in STATUSES:
            problem(row, "status", "status must be one of " + ", ".join(STATUSES), row.status)
            ok = False
        if row.reviewed and not row.reviewer:
            problem(row, "reviewer", f"a {row.status} row must name its reviewer", row.qid)
            ok = False
        if row.reviewed_on and not _DATE.match(row.reviewed_on):
            problem(row, "reviewed_on", "not a date (YYYY-MM-DD)", row.reviewed_on)
            ok = False
        key = (row.entity_id, row.qid)
        if ok and key in seen:
            problem(row, "qid", "the same entity and item appear on an earlier row; this row is ignored", row.qid)
            ok = False
        seen.add(key)
        if ok and index is not None and row.entity_id not in index:
            # The mapping is written for the real corpus; other corpora (the sample) lack most ids.
            problem(row, "entity_id", "no entity has this id in the corpus being built; the row is not used",
                    row.entity_id, Severity.INFO)
            ok = False
        if ok:
            valid.append(row)
    accepted = [r for r in valid if r.status == "accepted"]
    per_entity = Counter(r.entity_id for r in accepted)
    out = []
    for row in accepted:
        if per_entity[row.entity_id] > 1:
            problem(row, "status", "several items are accepted for this entity; owl:sameAs would make them one "
                    "thing, so none of them is published until one is chosen", row.entity_id)
            continue
        out.append(row)
    per_item: dict[str, list[str]] = defaultdict(list)
    for row in out:
        per_item[row.qid].append(row.entity_id)
    for row in out:
        others = [e for e in per_item[row.qid] if e != row.entity_id]
        if others:
            problem(row, "qid", f"this item is also accepted for {', '.join(others)}; owl:sameAs then says the "
                    "entities are the same thing", row.qid, Severity.WARNING)
    return out, problems


def link_problems(index: CorpusIndex | None, links_path: Path = LINKS_PATH) -> list[Problem]:
    """Every problem of the mapping file, phrased like the corpus's own (file, line, field)."""
    return check_rows(read_links(links_path), index)[1]


def accepted_links(links_path: Path = LINKS_PATH, index: CorpusIndex | None = None) -> dict[str, str]:
    """entity id -> QID for every valid accepted row."""
    return {r.entity_id: r.qid for r in check_rows(read_links(links_path), index)[0]}


def linkset_graph(iris: DataIris) -> str:
    return f"{iris.base}graph/wikidata-links"


def sameas_quads(index: CorpusIndex | None, iris: DataIris, links_path: Path = LINKS_PATH) -> list[Quad]:
    """The ``owl:sameAs`` / ``schema:sameAs`` links of the accepted rows, with their provenance,
    in the graph ``{BASE}graph/wikidata-links``. No file, or no accepted row: no quads."""
    links = read_links(links_path)
    rows, _ = check_rows(links, index)
    if not rows:
        return []
    g = NamedNode(linkset_graph(iris))

    def q(s: NamedNode, p: str, o: NamedNode | Literal) -> Quad:
        return Quad(s, NamedNode(p), o, g)

    shown = display_path(links.path)
    quads = [
        q(g, RDF + "type", NamedNode(VOID + "Linkset")),
        q(g, RDF + "type", NamedNode(PROV + "Entity")),
        q(g, VOID + "linkPredicate", NamedNode(OWL + "sameAs")),
        q(g, VOID + "subjectsTarget", NamedNode(iris.dataset)),
        q(g, VOID + "objectsTarget", NamedNode(WIKIDATA)),
        q(g, VOID + "triples", Literal(str(len(rows)), datatype=NamedNode(XSD + "integer"))),
        q(g, DCT + "source", Literal(shown)),
        q(g, DCT + "description", Literal(
            f"Links from Movement Graph entities to Wikidata items: the {len(rows)} rows of {shown} (git blob "
            f"{links.blob}) whose status is accepted, each checked by the reviewer it names. Rows still proposed "
            f"or rejected are not published. Each link is also stated as an rdf:Statement with its review.")),
    ]
    for row in sorted(rows, key=lambda r: r.entity_id):
        entity, item = NamedNode(iris.entity(row.entity_id)), NamedNode(WD + row.qid)
        quads += [q(entity, OWL + "sameAs", item), q(entity, SCHEMA + "sameAs", item)]
        stmt = NamedNode(f"{g.value}#{row.entity_id}")
        quads += [q(stmt, RDF + "type", NamedNode(RDF + "Statement")),
                  q(stmt, RDF + "subject", entity),
                  q(stmt, RDF + "predicate", NamedNode(OWL + "sameAs")),
                  q(stmt, RDF + "object", item),
                  q(stmt, DCT + "contributor", Literal(row.reviewer)),
                  q(stmt, DCT + "isPartOf", g)]
        if row.reviewed_on:
            quads.append(q(stmt, DCT + "date", Literal(row.reviewed_on, datatype=NamedNode(XSD + "date"))))
        if row.evidence:
            quads.append(q(stmt, DCT + "description", Literal(row.evidence)))
        if row.match:
            quads.append(q(stmt, DCT + "type", Literal(row.match)))
    return quads


DEFAULT_COMMENTS = (
    "# Reviewed links from Movement Graph entity ids to Wikidata items (see src/mg_rdf/wikidata_links.py).",
    "# Only rows with status \"accepted\" are published; reviewed rows must name their reviewer.",
)


def write_links(path: Path, comments: Iterable[str], rows: Iterable[LinkRow]) -> None:
    """Write the mapping atomically (a reader never sees half a file); rows as given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [*(list(comments) or DEFAULT_COMMENTS), "\t".join(COLUMNS), *(r.to_line() for r in rows)]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def merge_proposals(links: LinkFile, fresh: list[LinkRow], asked: set[str]) -> list[LinkRow]:
    """The rows to write after a reconcile run: reviewed and malformed rows as read, earlier proposals
    for entities not asked about this time, and this run's proposals (which replace the earlier ones
    for the entities asked about); by entity id, reviewed rows first, then by confidence."""
    kept = [r for r in links.rows if r.reviewed or r.entity_id not in asked or r.status != "proposed"]
    order = {id(r): i for i, r in enumerate(kept)}

    def key(r: LinkRow) -> tuple:
        return (r.entity_id, not r.reviewed, CONFIDENCE_ORDER.get(r.confidence, 9), order.get(id(r), 0),
                int(r.qid[1:]) if r.qid[1:].isdigit() else 0)

    return sorted([*kept, *fresh], key=key)


def fresh_row(entity_id: str, qid: str, **fields: str) -> LinkRow:
    """A new row (written from its fields, not from a line)."""
    return replace(LinkRow(entity_id, qid), **{k: _cell(v) for k, v in fields.items()})
