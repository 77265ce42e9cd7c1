"""``mg-rdf reconcile``: propose Wikidata items for entities that have no reviewed link yet.

It reads the entities from the built store, asks a Wikidata-compatible SPARQL
endpoint (the Wikidata Query Service unless told otherwise) and writes its
proposals into the mapping file (``wikidata_links``) as ``proposed`` rows with
their evidence, for a person to accept or reject. Reviewed rows are written
back exactly as they were; a rejected item is never proposed again.

Candidates are found first by official website, then by label:

1. Every website of an organisation, funder or local group is looked up as
   ``wdt:P856`` in its usual spellings (http/https, ``www.`` or not, trailing
   slash or not) and compared after the same normalisation. One such item that
   also bears our name (English label or alias) is ``high`` confidence, and any
   other item with the website is named in its evidence; a single item with
   another name is ``medium``; several that fit equally are ``ambiguous``.
2. Entities no website matched are looked up by name as an English
   ``rdfs:label`` or ``skos:altLabel``, exactly but ignoring case (the name is
   sent as written, lower-cased and capitalised: matching case-insensitively on
   the server would scan every label); a trailing parenthesis ("European
   Digital Rights (EDRi)") is also tried without it. People must be humans
   (``wdt:P31 wd:Q5``), organisations must not; an item with an official website
   other than ours is left out. One fitting item is ``low``, several ``ambiguous``.

Politeness (Wikimedia's User-Agent policy, the query service's rules): a
descriptive User-Agent (tool, version, contact URL; ``MG_RDF_CONTACT`` overrides
the contact), one request at a time, ``VALUES`` batches of ``--batch``
entities, a time limit on every request, and ``429``/``503`` answers honoured
by waiting as long as ``Retry-After`` says (within a bound). When the endpoint
cannot be reached the command says so and writes nothing.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import __version__, schema
from .problems import MgRdfError
from .source import DEFAULT_REPOSITORY
from .vocab import MG, WD, DataIris
from .wikidata_links import (CONFIDENCE_ORDER, LINKS_PATH, RECONCILE_BATCH, RECONCILE_TIMEOUT,
                             WIKIDATA_QUERY_SERVICE, LinkRow, fresh_row, merge_proposals, read_links,
                             write_links)

DEFAULT_ENDPOINT = WIKIDATA_QUERY_SERVICE
DEFAULT_BATCH = RECONCILE_BATCH
DEFAULT_TIMEOUT = RECONCILE_TIMEOUT
MAX_RETRY_WAIT = 300.0     # a Retry-After longer than this ends the run instead of blocking it
HUMAN = "Q5"
SCHOLARLY_ARTICLE = "Q13442814"
# Which items may stand for an entity of each type, by their P31 classes: (required, excluded).
LABEL_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "organization": (frozenset(), frozenset({HUMAN, SCHOLARLY_ARTICLE})),
    "local-group": (frozenset(), frozenset({HUMAN, SCHOLARLY_ARTICLE})),
    "funder": (frozenset(), frozenset({SCHOLARLY_ARTICLE})),   # a funder may be one person
    "person": (frozenset({HUMAN}), frozenset()),
    "voice": (frozenset({HUMAN}), frozenset()),
    "publication": (frozenset(), frozenset({HUMAN})),
}
SITE_PROPERTIES = ("website", "websiteOrContact")


class EndpointUnreachable(MgRdfError):
    """The SPARQL endpoint could not be reached at all (no network, refused, DNS)."""


class EndpointError(MgRdfError):
    """The endpoint answered, but not with results (an error status, a timeout, a long back-off)."""


def user_agent() -> str:
    """Tool/version (contact URL; purpose) library/version — the form Wikimedia's policy asks for."""
    contact = os.environ.get("MG_RDF_CONTACT", DEFAULT_REPOSITORY)
    return f"mg-rdf/{__version__} ({contact}; mg-rdf reconcile bot) python-requests/{requests.__version__}"


class SparqlClient:
    """SELECT queries against one endpoint: POSTed, time-limited, retried after 429/503 as told."""

    def __init__(self, endpoint: str, timeout: float = DEFAULT_TIMEOUT, *, retries: int = 3,
                 max_wait: float = MAX_RETRY_WAIT, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.endpoint, self.timeout, self.retries, self.max_wait = endpoint, timeout, retries, max_wait
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": user_agent(), "Accept": "application/sparql-results+json"})
        self.sleep = sleep
        self.requests = 0
        self.waited = 0.0

    def select(self, query: str) -> list[dict[str, str]]:
        """The rows of a SELECT answer, each variable -> its value (IRI or lexical form)."""
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                r = self.session.post(self.endpoint, data={"query": query},
                                      timeout=(min(self.timeout, 10.0), self.timeout))
            except requests.exceptions.ConnectionError as e:
                raise EndpointUnreachable(
                    f"cannot reach the SPARQL endpoint {self.endpoint} ({_reason(e)}). reconcile needs to ask it; "
                    f"run it where the endpoint can be reached, or point --endpoint at a copy. Nothing was written."
                ) from None
            except requests.exceptions.Timeout:
                raise EndpointError(f"{self.endpoint} did not answer within {self.timeout:g} s; try a smaller "
                                    f"--batch or a longer --timeout. Nothing was written.") from None
            if r.status_code in (429, 503) and attempt < self.retries:
                wait = retry_after(r.headers.get("Retry-After"), default=5.0 * (attempt + 1))
                if wait > self.max_wait:
                    raise EndpointError(f"{self.endpoint} asks to wait {wait:g} s before the next request "
                                        f"(HTTP {r.status_code}); try again later. Nothing was written.")
                self.sleep(wait)
                self.waited += wait
                continue
            if r.status_code != 200:
                hint = (" Wikimedia refuses clients whose User-Agent it cannot attribute; set MG_RDF_CONTACT to a "
                        "URL or e-mail where you can be reached." if r.status_code == 403 else "")
                raise EndpointError(f"{self.endpoint} answered HTTP {r.status_code}: "
                                    f"{_first_line(r.text)}.{hint} Nothing was written.")
            try:
                data = r.json()
                return [{k: v["value"] for k, v in row.items()} for row in data["results"]["bindings"]]
            except (ValueError, KeyError, TypeError):
                raise EndpointError(f"{self.endpoint} did not answer with SPARQL JSON results "
                                    f"(Content-Type {r.headers.get('Content-Type', 'none')}). Nothing was written."
                                    ) from None
        raise EndpointError(f"{self.endpoint} kept answering 429/503 after {self.retries} retries; try again later. "
                            "Nothing was written.")


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _reason(e: Exception) -> str:
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)|(Connection refused|Name or service not known|timed out)", text)
    return (m.group(1) or m.group(2)).strip() if m else type(e).__name__


def _first_line(text: str) -> str:
    return next((s.strip() for s in text.splitlines() if s.strip()), "(no text)")[:200]


# --- our side -------------------------------------------------------------

@dataclass
class OurEntity:
    id: str
    type: str
    name: str
    websites: list[str] = field(default_factory=list)


def entities_in_store(store, iris: DataIris) -> list[OurEntity]:
    """Every entity of a type reconcile looks at, with its name and its http(s) websites."""
    by_class = {MG + t.cls: t.name for t in schema.TYPES.values() if t.name in LABEL_RULES}
    sites = " UNION ".join(f"{{ ?e <{MG}{p}> ?site }}" for p in SITE_PROPERTIES)
    q = (f"SELECT ?e ?type ?name ?site WHERE {{ ?g <{MG}describes> ?e . ?e a ?type ; <{MG}name> ?name . "
         f"VALUES ?type {{ {' '.join(f'<{c}>' for c in by_class)} }} "
         f"OPTIONAL {{ {sites} FILTER(isIRI(?site)) }} }}")
    found: dict[str, OurEntity] = {}
    for row in store.query(q, use_default_graph_as_union=True):
        entity_id = iris.entity_id_of(row["e"].value)
        if entity_id is None:
            continue
        e = found.setdefault(entity_id, OurEntity(entity_id, by_class[row["type"].value], row["name"].value))
        site = row["site"]
        if site is not None and site.value not in e.websites and site_key(site.value):
            e.websites.append(site.value)
    return [found[k] for k in sorted(found)]


# --- normalising websites and names ----------------------------------------

def site_key(url: str) -> str | None:
    """What two spellings of one website share: host without ``www.``, port, path without its
    trailing slash, query. None for anything but an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    host = host.removeprefix("www.")
    port_part = f":{port}" if port and port not in (80, 443) else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{port_part}{parts.path.rstrip('/')}{query}"


_IRI_UNSAFE = re.compile(r'[\s<>"{}|^`\\]')


def site_variants(url: str) -> list[str]:
    """The spellings of a website Wikidata may hold as P856: http/https × www or not × slash or not."""
    key = site_key(url)
    if key is None:
        return []
    host_port, sep, rest = key.partition("/")
    path, _, query = ("/" + rest if sep else "").partition("?")
    query = f"?{query}" if query else ""
    out = []
    for scheme in ("https", "http"):
        for host in (host_port, "www." + host_port):
            for p in dict.fromkeys((path, path + "/")):
                candidate = f"{scheme}://{host}{p}{query}"
                if not _IRI_UNSAFE.search(candidate):
                    out.append(candidate)
    return out


_TRAILING_PARENTHESIS = re.compile(r"^(.*\S)\s*\([^()]+\)$")


def name_forms(name: str) -> list[tuple[str, str]]:
    """The forms of our name a label may equal: the name, and the name without a trailing parenthesis."""
    forms = [(name.strip(), "our name")]
    m = _TRAILING_PARENTHESIS.match(name.strip())
    if m:
        forms.append((m.group(1), "our name without its parenthesis"))
    return forms


def case_variants(text: str) -> list[str]:
    """As written, lower case, and each word capitalised: what labels are usually written as."""
    capitalised = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    return list(dict.fromkeys((text, text.lower(), capitalised)))


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"@en'


# --- asking the endpoint ------------------------------------------------------

@dataclass
class Item:
    qid: str
    label: str = ""
    description: str = ""
    names: set[str] = field(default_factory=set)      # lower-cased English label and aliases seen
    classes: set[str] = field(default_factory=set)    # QIDs of P31
    sites: set[str] = field(default_factory=set)      # P856 values

    def shown(self) -> str:
        return (self.label or "(no English label)") + (f" — {self.description}" if self.description else "")


_DETAILS = ("OPTIONAL { ?item rdfs:label ?label . FILTER(LANG(?label) = \"en\") } "
            "OPTIONAL { ?item <http://schema.org/description> ?description . FILTER(LANG(?description) = \"en\") } "
            "OPTIONAL { ?item wdt:P31 ?class } ")
_PREFIXES = ("PREFIX wdt: <http://www.wikidata.org/prop/direct/> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> "
             "PREFIX skos: <http://www.w3.org/2004/02/skos/core#> ")


def _collect(rows: Iterable[dict[str, str]], items: dict[str, Item]) -> None:
    for row in rows:
        iri = row.get("item", "")
        if not iri.startswith(WD + "Q"):
            continue
        item = items.setdefault(iri[len(WD):], Item(iri[len(WD):]))
        if row.get("label"):
            item.label = row["label"]
            item.names.add(row["label"].lower())
        for key in ("alias", "matched"):
            if row.get(key):
                item.names.add(row[key].lower())
        if row.get("description"):
            item.description = row["description"]
        if row.get("class", "").startswith(WD):
            item.classes.add(row["class"][len(WD):])
        if row.get("site"):
            item.sites.add(row["site"])


def batches(values: list, size: int) -> Iterator[list]:
    for i in range(0, len(values), max(1, size)):
        yield values[i:i + max(1, size)]


def items_by_website(client: SparqlClient, entities: list[OurEntity], batch: int) -> dict[str, Item]:
    """Items whose official website is one of these entities' websites (any spelling)."""
    items: dict[str, Item] = {}
    for group in batches([e for e in entities if e.websites], batch):
        values = sorted({v for e in group for w in e.websites for v in site_variants(w)})
        q = (_PREFIXES + "SELECT ?item ?site ?label ?alias ?description ?class WHERE { "
             f"VALUES ?site {{ {' '.join(f'<{v}>' for v in values)} }} ?item wdt:P856 ?site . " + _DETAILS +
             "OPTIONAL { ?item skos:altLabel ?alias . FILTER(LANG(?alias) = \"en\") } }")
        _collect(client.select(q), items)
    return items


def items_by_label(client: SparqlClient, entities: list[OurEntity], batch: int) -> dict[str, Item]:
    """Items with one of these entities' names as English label or alias (as written or re-cased)."""
    items: dict[str, Item] = {}
    for group in batches(entities, batch):
        values = sorted({v for e in group for form, _ in name_forms(e.name) for v in case_variants(form)})
        q = (_PREFIXES + "SELECT ?item ?matched ?label ?description ?class ?site WHERE { "
             f"VALUES ?matched {{ {' '.join(_literal(v) for v in values)} }} "
             "{ ?item rdfs:label ?matched } UNION { ?item skos:altLabel ?matched } " + _DETAILS +
             "OPTIONAL { ?item wdt:P856 ?site } }")
        _collect(client.select(q), items)
    return items


# --- deciding ---------------------------------------------------------------

def _matching_form(entity: OurEntity, item: Item) -> tuple[str, str] | None:
    for form, how in name_forms(entity.name):
        if form.lower() in item.names:
            return form, how
    return None


def _fits(entity: OurEntity, item: Item) -> bool:
    required, excluded = LABEL_RULES[entity.type]
    return (not required or bool(required & item.classes)) and not (excluded & item.classes)


def site_candidates(entity: OurEntity, by_site: dict[str, Item], rejected: set[str]) -> list[LinkRow]:
    """Proposals from the official website, best first; empty when no item has our website."""
    ours = {site_key(w): w for w in entity.websites}
    site_items = [i for i in by_site.values()
                  if i.qid not in rejected and ours.keys() & {site_key(s) for s in i.sites}]
    if not site_items:
        return []
    named = [i for i in site_items if _matching_form(entity, i)]
    if len(named) == 1:
        chosen, confidence, match = named, "high", "website+label"
    elif len(site_items) == 1:
        chosen, confidence, match = site_items, "medium", "website"
    else:
        chosen, confidence, match = named or site_items, "ambiguous", "website+label" if named else "website"
    others = [i for i in site_items if i not in chosen]
    rows = []
    for item in sorted(chosen, key=_number):
        site = next(s for s in sorted(item.sites) if site_key(s) in ours)
        evidence = f"official website (P856) {site} = our website {ours[site_key(site)]}"
        form = _matching_form(entity, item)
        evidence += (f"; English label or alias = {form[1]} \"{form[0]}\"" if form
                     else f"; label \"{item.label}\" differs from our name \"{entity.name}\"")
        if confidence == "ambiguous":
            evidence += f"; {len(chosen)} items fit equally, accept at most one"
        if others:
            evidence += "; also uses this website: " + ", ".join(f"{o.qid} ({o.label})" for o in others)
        rows.append(_row(entity, item, match, confidence, evidence))
    return rows


def label_candidates(entity: OurEntity, by_label: dict[str, Item], rejected: set[str]) -> list[LinkRow]:
    """Proposals from the English label or aliases, for an entity no website matched."""
    if entity.type not in LABEL_RULES:
        return []
    ours = {site_key(w) for w in entity.websites}
    fitting = []
    for item in by_label.values():
        form = _matching_form(entity, item)
        if item.qid in rejected or form is None or not _fits(entity, item):
            continue
        if ours and item.sites and not ours & {site_key(s) for s in item.sites}:
            continue   # our name, someone else's website: another body of the same name
        fitting.append((item, form))
    confidence = "low" if len(fitting) == 1 else "ambiguous"
    rows = []
    for item, (form, how) in sorted(fitting, key=lambda f: _number(f[0])):
        evidence = f"English label or alias = {how} \"{form}\" (ignoring case)"
        evidence += ("; the item has no official website" if not item.sites else
                     "; we have no website to compare" if not ours else "")
        if HUMAN in item.classes:
            evidence += "; instance of human (Q5)"
        if confidence == "ambiguous":
            evidence += f"; {len(fitting)} items fit equally, accept at most one"
        rows.append(_row(entity, item, "label", confidence, evidence))
    return rows


def _number(item: Item) -> int:
    return int(item.qid[1:])


def _row(entity: OurEntity, item: Item, match: str, confidence: str, evidence: str) -> LinkRow:
    return fresh_row(entity.id, item.qid, status="proposed", match=match, confidence=confidence,
                     evidence=evidence, wikidata_label=item.shown())


# --- the command ----------------------------------------------------------------

@dataclass
class ReconcileReport:
    endpoint: str
    out: Path
    considered: int = 0            # entities without an accepted link
    already_linked: int = 0
    with_candidates: int = 0
    by_confidence: dict[str, int] = field(default_factory=dict)
    reviewed_kept: int = 0
    requests: int = 0
    waited: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        found = ", ".join(f"{n} {c}" for c, n in sorted(self.by_confidence.items(),
                                                         key=lambda kv: CONFIDENCE_ORDER.get(kv[0], 9))) or "none"
        waited = f", waited {self.waited:g} s as asked" if self.waited else ""
        return (f"asked {self.endpoint} about {self.considered} entities ({self.already_linked} already linked) in "
                f"{self.requests} requests{waited}, {self.seconds:.1f} s: candidates for {self.with_candidates} "
                f"entities ({found}); wrote {self.out}, keeping {self.reviewed_kept} reviewed rows unchanged")


def reconcile(store, iris: DataIris, client: SparqlClient, links_path: Path = LINKS_PATH,
              out_path: Path | None = None, batch: int = DEFAULT_BATCH) -> ReconcileReport:
    """Propose candidates for every entity without an accepted link and write the merged mapping to
    ``out_path`` (default: the mapping itself). Reviewed rows are kept byte for byte; earlier proposals
    for the entities asked about are replaced by this run's. Nothing is written if a request fails."""
    started = time.perf_counter()
    out_path = Path(out_path or links_path)
    links = read_links(links_path)
    if links.unreadable:
        raise MgRdfError(f"{links_path}: " + "; ".join(p.message for p in links.problems) + ". Fix the file first; "
                         "nothing was asked or written.")
    accepted = {r.entity_id for r in links.rows if r.status == "accepted"}
    rejected: dict[str, set[str]] = defaultdict(set)
    for r in (r for r in links.rows if r.status == "rejected"):
        rejected[r.entity_id].add(r.qid)
    everyone = entities_in_store(store, iris)
    todo = [e for e in everyone if e.id not in accepted]
    report = ReconcileReport(client.endpoint, out_path, considered=len(todo),
                             already_linked=len(everyone) - len(todo))
    by_site = items_by_website(client, todo, batch)
    proposals = {e.id: site_candidates(e, by_site, rejected[e.id]) for e in todo}
    label_todo = [e for e in todo if not proposals[e.id] and e.type in LABEL_RULES]
    by_label = items_by_label(client, label_todo, batch) if label_todo else {}
    for e in label_todo:
        proposals[e.id] = label_candidates(e, by_label, rejected[e.id])
    fresh = [r for e in todo for r in proposals[e.id]]
    report.with_candidates = sum(bool(rows) for rows in proposals.values())
    for r in fresh:
        report.by_confidence[r.confidence] = report.by_confidence.get(r.confidence, 0) + 1
    asked = {e.id for e in todo}
    write_links(out_path, links.comments, merge_proposals(links, fresh, asked))
    report.reviewed_kept = sum(r.reviewed for r in links.rows)
    report.requests, report.waited = client.requests, client.waited
    report.seconds = time.perf_counter() - started
    return report
