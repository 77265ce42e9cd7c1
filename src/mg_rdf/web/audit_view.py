"""What the pages show of the audit trail: an entity's audit (``audit_view(snapshot, id)``, for
its page) and the corpus-wide figures (``audit_figures(snapshot)``, for the home page).

An audit file ``audits/<id>.md`` becomes one named graph ``{BASE}graph/audit/{id}``
(see ``mg_rdf.audits``) holding the audit, its claim assessments and the link
``entity mg:audit audit``. So the whole audit is one ``quads_for_pattern`` over
that graph, with the graph IRI written in — never a query built from URL text: the
caller passes ids that are keys of ``snapshot.entities``.

Reading an audit graph costs a few milliseconds (a couple of hundred quads), and a
build never changes once written, so views are kept per (build, entity), and read
ahead in the background once the build serves its first entity page.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from pyoxigraph import Literal, NamedNode, Store

from ..audits import DECISIONS, audit_graph_iri, audit_iri, audit_totals
from ..mapping import is_http_url
from ..vocab import MG, ONTOLOGY_IRI, PROV, SKOS
from .state import Snapshot

OLD_WORDS = ("verified", "discrepancy", "unverifiable")   # decisions and statuses before 2026-06-10
FLAGGED = frozenset(("correction", "discrepancy"))        # decisions that say the entry is wrong
DECISION_ORDER = tuple(DECISIONS)                         # corroborated … correction, then the old words
_DECISION, _TIER, _STATUS = MG + "decision-", MG + "source-tier-", MG + "audit-status-"
_COUNT_PROPS = {   # the frontmatter's count per decision (ontology property -> decision word)
    "claimsCorroborated": "corroborated", "claimsPrimarySourced": "primary-sourced",
    "claimsSingleSource": "single-source", "claimsUncorroborated": "uncorroborated",
    "openCorrections": "correction", "claimsVerified": "verified", "claimsDiscrepancy": "discrepancy",
    "claimsUnverifiable": "unverifiable"}


@dataclass(frozen=True)
class SourceLink:
    """One source an audit names: an http(s) page, or an entity of this build cited by its file."""

    text: str
    href: str | None = None        # only a valid http(s) URL
    entity_id: str | None = None   # an entity of this build (the template links its page)


@dataclass
class ClaimView:
    """One claim assessment (``{audit}#claim-N``) as the page shows it."""

    fragment: str                  # "claim-12": the claim's IRI is the audit's + "#" + fragment
    line: int                      # line of the claim's heading in the audit file
    text: str = ""                 # the claim as the audit quotes it (its heading)
    decision: str = ""             # the corpus's word, or the text the file gave when it is no known word
    decision_known: bool = False
    decision_note: str = ""        # words qualifying the decision ("for the year")
    tier: str = ""
    sources: list[SourceLink] = field(default_factory=list)
    source_text: str = ""          # the Source line as written, when it says more than its links
    source_content: str = ""
    comparison: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        n = self.fragment.removeprefix("claim-")
        return f"Claim {n}" if not n.startswith("at-") else f"Claim (line {self.line})"

    @property
    def flagged(self) -> bool:
        """A correction (or, in the old vocabulary, a discrepancy): the entry is said to be wrong here."""
        return self.decision_known and self.decision in FLAGGED


@dataclass
class AuditView:
    """An entity's audit: what its frontmatter declares, whether it is stale, and its claims in file order."""

    iri: str
    graph: str
    date: str = ""
    audit_pass: int | None = None
    status: str = ""               # the corpus's word (corroborated, supported, corrections-pending, or an old one)
    status_known: bool = False
    stale: bool | None = None      # None: the audit's entity_hash could not be compared
    audited_blob: str = ""
    current_blob: str = ""
    source_path: str = ""
    source_url: str | None = None  # the audit file at its commit (http(s) only)
    claims_total: int | None = None
    declared: dict[str, int] = field(default_factory=dict)   # frontmatter counts by decision word
    claims: list[ClaimView] = field(default_factory=list)
    consulted: list[SourceLink] = field(default_factory=list)
    notes: str = ""
    meanings: dict[str, str] = field(default_factory=dict)   # decision word -> the ontology's definition
    status_meaning: str = ""                                 # the ontology's definition of the status

    @property
    def legacy(self) -> bool:
        return self.status in OLD_WORDS

    @property
    def distribution(self) -> list[tuple[str, int]]:
        """(decision, claims) in the vocabulary's order; decisions kept as text come last."""
        counts = Counter(c.decision if c.decision_known else "other" for c in self.claims)
        return [(w, counts[w]) for w in (*DECISION_ORDER, "other") if counts[w]]

    @property
    def flagged(self) -> int:
        return sum(c.flagged for c in self.claims)

    @property
    def declared_differs(self) -> bool:
        """The frontmatter's counts are not the claim sections' (62 files at HEAD): say so."""
        sections = dict(self.distribution)
        differs = any(sections.get(w, 0) != n for w, n in self.declared.items())
        return differs or (self.claims_total is not None and self.claims_total != len(self.claims))


_VIEWS: OrderedDict[tuple[str, str], AuditView | None] = OrderedDict()
_DEFINITIONS: dict[str, dict[str, str]] = {}
_WARMED: set[str] = set()   # build versions whose audits were read ahead
_lock = threading.Lock()
CACHE_SIZE = 1024   # audits kept: the 828 entities of the corpus at HEAD (533 audited) take ~22 MB


def audit_view(snap: Snapshot, entity_id: str) -> AuditView | None:
    """The audit of ``entity_id`` (a key of ``snap.entities``), or None when it has none."""
    key = (snap.version, entity_id)
    with _lock:
        if key in _VIEWS:
            _VIEWS.move_to_end(key)
            return _VIEWS[key]
    _warm_later(snap)
    view = _read(snap, entity_id)
    with _lock:
        _VIEWS[key] = view
        while len(_VIEWS) > CACHE_SIZE:
            _VIEWS.popitem(last=False)
    return view


def _warm_later(snap: Snapshot) -> None:
    """Read every audit of the build into the cache in a background thread, once per build (and
    pin), when they all fit: a first visit then finds its audit read. Reading one costs 2-4 ms,
    a third of an audited page's time; the whole corpus at HEAD takes 2-3 s of one thread. Not
    for a remote SPARQL store, where reading ahead would be a query per entity to someone's server."""
    with _lock:
        if snap.version in _WARMED or len(snap.entities) > CACHE_SIZE or not isinstance(snap.store, Store):
            return
        _WARMED.add(snap.version)
    threading.Thread(target=_warm, args=(snap,), name=f"audit-views-{snap.version}", daemon=True).start()


def _warm(snap: Snapshot) -> None:
    for entity_id in list(snap.entities):
        if (snap.version, entity_id) not in _VIEWS:
            try:
                audit_view(snap, entity_id)
            except Exception:   # noqa: BLE001 - a warm-up must never take the server down; pages read lazily
                return
        time.sleep(0)   # let request threads have the interpreter between two audits


def definitions(snap: Snapshot) -> dict[str, str]:
    """The ontology's skos:definition of each decision, tier and status concept (IRI -> text), per build."""
    found = _DEFINITIONS.get(snap.version)
    if found is None:
        found = {q.subject.value: q.object.value for q in snap.store.quads_for_pattern(
            None, NamedNode(SKOS + "definition"), None, NamedNode(ONTOLOGY_IRI))
            if q.subject.value.startswith((_DECISION, _TIER, _STATUS))}
        if len(_DEFINITIONS) > 8:   # a server sees a build and its few pins; forget old ones wholesale
            _DEFINITIONS.clear()
        _DEFINITIONS[snap.version] = found
    return found


def _word(term, prefix: str) -> tuple[str, bool]:
    """The corpus's word for a concept IRI, or the text an audit gave where no known word was."""
    if isinstance(term, NamedNode) and term.value.startswith(prefix):
        return term.value[len(prefix):], True
    return term.value, False


def _read(snap: Snapshot, entity_id: str) -> AuditView | None:
    a_iri, g_iri = audit_iri(snap.iris, entity_id), audit_graph_iri(snap.iris, entity_id)
    audit: dict[str, list] = {}
    about_graph: dict[str, str] = {}
    claims: dict[str, dict[str, list]] = {}
    for q in snap.store.quads_for_pattern(None, None, None, NamedNode(g_iri)):
        s = q.subject.value
        into = audit if s == a_iri else about_graph if s == g_iri else (
            claims.setdefault(s, {}) if s.startswith(a_iri + "#") else None)
        if into is None:
            continue
        if into is about_graph:
            about_graph[q.predicate.value] = q.object.value
        else:
            into.setdefault(q.predicate.value, []).append(q.object)
    if not audit:
        return None
    defs = definitions(snap)

    def one(p: str) -> str:
        v = audit.get(MG + p)
        return v[0].value if v else ""

    view = AuditView(a_iri, g_iri, date=one("auditDate"), audited_blob=one("auditedBlob"),
                     current_blob=snap.entities[entity_id].blob, source_path=about_graph.get(MG + "sourcePath", ""),
                     notes=one("auditNotes"))
    url = about_graph.get(PROV + "wasDerivedFrom")
    view.source_url = url if url and is_http_url(url) else None
    if (p := one("auditPass")).isdigit():
        view.audit_pass = int(p)
    if MG + "auditStatus" in audit:
        view.status, view.status_known = _word(audit[MG + "auditStatus"][0], _STATUS)
    stale = one("stale")
    view.stale = True if stale == "true" else False if stale == "false" else None
    if (t := one("claimsTotal")).isdigit():
        view.claims_total = int(t)
    for prop, word in _COUNT_PROPS.items():
        v = one(prop)
        if v.isdigit():
            view.declared[word] = int(v)
    view.consulted = [_link(snap, t) for t in audit.get(MG + "sourceConsulted", [])]
    view.claims = sorted((_claim(snap, iri[len(a_iri) + 1:], c) for iri, c in claims.items()),
                         key=lambda c: c.line)
    view.meanings = {w: defs[_DECISION + w] for w in DECISION_ORDER if _DECISION + w in defs}
    view.status_meaning = defs.get(_STATUS + view.status, "") if view.status_known else ""
    return view


def _claim(snap: Snapshot, fragment: str, c: dict[str, list]) -> ClaimView:
    def one(p: str) -> str:
        v = c.get(MG + p)
        return v[0].value if v else ""

    line = one("lineNumber")
    view = ClaimView(fragment, int(line) if line.isdigit() else 0, text=one("claimText"),
                     decision_note=one("decisionNote"), source_text=one("sourceText"),
                     source_content=one("sourceContent"), comparison=one("comparison"), note=one("claimNote"))
    if MG + "decision" in c:
        view.decision, view.decision_known = _word(c[MG + "decision"][0], _DECISION)
    if MG + "sourceTier" in c:
        view.tier = _word(c[MG + "sourceTier"][0], _TIER)[0]
    view.sources = sorted((_link(snap, t) for t in c.get(MG + "claimSource", [])), key=lambda s: s.text)
    return view


def _link(snap: Snapshot, term) -> SourceLink:
    if isinstance(term, Literal):
        return SourceLink(term.value)
    eid = snap.iris.entity_id_of(term.value)
    if eid is not None and eid in snap.entities:   # a corpus path the audit cites: the entity's page
        return SourceLink(snap.entities[eid].name, entity_id=eid)
    # an IRI in the store is already a valid IRI (the mapper keeps only http(s) URLs as IRIs);
    # the scheme test is what keeps any other scheme out of an href, at a fraction of is_http_url's cost
    return SourceLink(term.value, href=term.value if term.value.startswith(("http://", "https://")) else None)


# -- the corpus-wide figures (the home page) ------------------------------------------------------

# RELIABILITY.md's figures (audit_totals keys) per decision and per status, in its order
DECISION_FIGURES = (("corroborated", "claims_corroborated"), ("primary-sourced", "claims_primary_sourced"),
                    ("single-source", "claims_single_source"), ("uncorroborated", "claims_uncorroborated"),
                    ("correction", "open_corrections"))
STATUS_FIGURES = (("corroborated", "status_corroborated"), ("supported", "status_supported"),
                  ("corrections-pending", "status_corrections_pending"))


@dataclass
class AuditFigures:
    """The corpus-wide audit figures the home page shows (``audit_totals``, the numbers of the
    corpus's RELIABILITY.md, plus stale audits), and any in the vocabulary before 2026-06-10."""

    totals: dict[str, int | None]
    old_decisions: dict[str, int] = field(default_factory=dict)   # word -> declared claims
    old_statuses: dict[str, int] = field(default_factory=dict)    # word -> audits

    def figure(self, key: str) -> int:
        return self.totals.get(key) or 0

    @property
    def decisions(self) -> list[tuple[str, str | None, int]]:
        """(word, audit_totals key or None for an old word, claims), in RELIABILITY.md's order."""
        return self._rows(DECISION_FIGURES, self.old_decisions)

    @property
    def statuses(self) -> list[tuple[str, str | None, int]]:
        """(word, audit_totals key or None for an old word, audits)."""
        return self._rows(STATUS_FIGURES, self.old_statuses)

    def _rows(self, current: tuple[tuple[str, str], ...], old: dict[str, int]) -> list[tuple[str, str | None, int]]:
        # the current words always, even at 0, unless the build holds old-vocabulary audits only
        only_old = bool(old) and not any(self.figure(k) for _, k in current)
        rows: list[tuple[str, str | None, int]] = [] if only_old else [(w, k, self.figure(k)) for w, k in current]
        return rows + [(w, None, n) for w, n in old.items()]


_FIGURES: dict[str, AuditFigures] = {}


def audit_figures(snap: Snapshot) -> AuditFigures:
    """The corpus-wide audit figures of the build (computed once per build: ~50 ms at HEAD)."""
    found = _FIGURES.get(snap.version)
    if found is None:
        found = _read_audit_figures(snap)
        with _lock:
            _FIGURES.clear()   # the home page shows the current build only
            _FIGURES[snap.version] = found
    return found


def _read_audit_figures(snap: Snapshot) -> AuditFigures:
    out = AuditFigures(audit_totals(snap.store))
    if not out.figure("audited_entities"):
        return out
    # a count missing or kept as text counts 0 (as in audit-totals.rq) rather than voiding the sum
    sums = " ".join(f"(SUM(COALESCE(IF(isNumeric(?{w}), ?{w}, 0), 0)) AS ?sum_{w})" for w in OLD_WORDS)
    counts = " ".join(f"OPTIONAL {{ ?a <{MG}claims{w.capitalize()}> ?{w} }}" for w in OLD_WORDS)
    q = f"""SELECT ?status (COUNT(?a) AS ?audits) {sums}
            WHERE {{ ?a a <{MG}Audit> . OPTIONAL {{ ?a <{MG}auditStatus> ?status }} {counts} }} GROUP BY ?status"""
    decisions, statuses = Counter(), Counter()
    for row in snap.store.query(q, use_default_graph_as_union=True):
        statuses[row["status"].value.rsplit("#audit-status-", 1)[-1] if row["status"] else ""] += int(
            row["audits"].value)
        decisions.update({w: int(row[f"sum_{w}"].value) for w in OLD_WORDS if row[f"sum_{w}"] is not None})
    out.old_decisions = {w: decisions[w] for w in OLD_WORDS if decisions[w]}
    out.old_statuses = {w: statuses[w] for w in OLD_WORDS if statuses[w]}
    return out
