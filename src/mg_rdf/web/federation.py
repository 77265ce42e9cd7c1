"""``/wikidata``: using this graph together with Wikidata, in one query, from either side.

The page is built from what this server actually holds and allows, so it cannot
drift from them: the alignments are read from the ontology graph of the current
build, the links from the ``{BASE}graph/wikidata-links`` graph (see
``wikidata_links``), the SERVICE allow-list, time limit and remote-result cap
from the app's configuration. Its worked queries are generated from the data
(our websites, our linked items), and the query builders are plain functions
(``website_join_query`` …) so tests run exactly what the page shows.

Why the queries toward Wikidata put their values *inside* the SERVICE block:
the store sends a SERVICE pattern to the remote endpoint as it is written,
without the bindings found so far, so ``SERVICE <wdqs> { ?item wdt:P856 ?site }``
would ask Wikidata for every official website it knows. ``VALUES`` inside the
block keeps the remote part small (and under the remote-result cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from flask import Blueprint, current_app, render_template, url_for

from ..vocab import MG, ONTOLOGY_IRI, OWL, RDFS, SCHEMA, SKOS, WD, WDT
from ..wikidata_links import WIKIDATA_QUERY_SERVICE, linkset_graph
from . import current_snapshot
from .pages import per_build
from .state import Snapshot

bp = Blueprint("federation", __name__)

EXAMPLE_SITES = 25     # websites written into the worked query (the reader can add more)
# English names of the Wikidata terms the ontology aligns to (the page works offline, so they are not fetched).
WIKIDATA_NAMES = {
    "P50": "author", "P123": "publisher", "P276": "location", "P355": "has subsidiary", "P361": "part of",
    "P571": "inception", "P577": "publication date", "P580": "start time", "P582": "end time",
    "P585": "point in time", "P710": "participant", "P749": "parent organization", "P856": "official website",
    "P953": "full work available at URL", "P8324": "funder", "Q5": "human", "Q43229": "organization",
    "Q1656682": "event",
}
RELATIONS = {RDFS + "subPropertyOf": "narrower or equal", RDFS + "subClassOf": "narrower or equal",
             SKOS + "closeMatch": "close match", OWL + "equivalentProperty": "equal",
             OWL + "equivalentClass": "equal"}


@dataclass(frozen=True)
class Alignment:
    term: str             # local name in mg:
    label: str
    wikidata: str         # P856 / Q43229
    wikidata_name: str
    relation: str
    schema_org: tuple[str, ...]


@dataclass(frozen=True)
class WorkedQuery:
    key: str
    title: str
    explanation: str
    text: str
    run_here: bool        # runs on this endpoint (else: on the Wikidata Query Service)


def website_join_query(sites: list[str], service: str = WIKIDATA_QUERY_SERVICE) -> str:
    """Our organisations and funders with the Wikidata items whose official website is theirs."""
    values = "\n".join(f"      <{s}>" for s in sites)
    return ("SELECT ?entity ?name ?site ?item ?itemLabel\nWHERE {\n"
            "  ?entity mg:name ?name ;\n          mg:website ?site .\n"
            f"  SERVICE <{service}> {{\n    VALUES ?site {{\n{values}\n    }}\n"
            "    ?item wdt:P856 ?site .\n"
            "    OPTIONAL { ?item rdfs:label ?itemLabel . FILTER(LANG(?itemLabel) = \"en\") }\n  }\n}\n"
            "ORDER BY ?name\n")


def linked_items_query(qids: list[str], service: str = WIKIDATA_QUERY_SERVICE) -> str:
    """For entities linked by owl:sameAs: what Wikidata says about them (inception, country, website)."""
    values = "\n".join(f"      wd:{q}" for q in qids)
    return ("SELECT ?entity ?name ?item ?inception ?country ?website\nWHERE {\n"
            "  ?entity owl:sameAs ?item ;\n          mg:name ?name .\n"
            f"  SERVICE <{service}> {{\n    VALUES ?item {{\n{values}\n    }}\n"
            "    OPTIONAL { ?item wdt:P571 ?inception }\n    OPTIONAL { ?item wdt:P17 ?country }\n"
            "    OPTIONAL { ?item wdt:P856 ?website }\n  }\n}\nORDER BY ?name\n")


def from_wikidata_by_website(endpoint: str) -> str:
    """For the Wikidata Query Service: its items whose official website is one of our organisations'."""
    return (f"PREFIX mg: <{MG}>\n"
            "SELECT ?item ?itemLabel ?entity ?name\nWHERE {\n"
            f"  SERVICE <{endpoint}> {{\n"
            "    SELECT ?entity ?name ?site WHERE { ?entity a mg:Organization ; mg:name ?name ; mg:website ?site . }\n"
            "  }\n  ?item wdt:P856 ?site .\n"
            "  SERVICE wikibase:label { bd:serviceParam wikibase:language \"en\". }\n}\n")


def from_wikidata_by_link(endpoint: str) -> str:
    """For the Wikidata Query Service: the campaigns our linked organisations lead, with the items' countries."""
    return (f"PREFIX mg: <{MG}>\n"
            "SELECT ?item ?itemLabel ?countryLabel ?campaign ?campaignName\nWHERE {\n"
            f"  SERVICE <{endpoint}> {{\n"
            "    SELECT ?item ?campaign ?campaignName WHERE {\n"
            "      ?org owl:sameAs ?item ; mg:leadsCampaign ?campaign .\n"
            "      ?campaign mg:name ?campaignName .\n    }\n  }\n"
            "  OPTIONAL { ?item wdt:P17 ?country }\n"
            "  SERVICE wikibase:label { bd:serviceParam wikibase:language \"en\". }\n}\n")


def _alignments(snap: Snapshot) -> list[Alignment]:
    q = (f"SELECT ?term ?how ?target ?label WHERE {{ GRAPH <{ONTOLOGY_IRI}> {{ ?term ?how ?target . "
         f"VALUES ?how {{ {' '.join(f'<{r}>' for r in RELATIONS)} }} "
         f"FILTER(STRSTARTS(STR(?target), \"{WD}\") || STRSTARTS(STR(?target), \"{WDT}\")) "
         f"FILTER(STRSTARTS(STR(?term), \"{MG}\")) "
         f"OPTIONAL {{ ?term <{RDFS}label> ?label FILTER(LANG(?label) = \"en\") }} }} }}")
    schema_q = (f"SELECT ?term ?target WHERE {{ GRAPH <{ONTOLOGY_IRI}> {{ ?term ?how ?target . "
                f"VALUES ?how {{ <{RDFS}subPropertyOf> <{RDFS}subClassOf> }} "
                f"FILTER(STRSTARTS(STR(?target), \"{SCHEMA}\")) }} }}")
    schema_org: dict[str, list[str]] = {}
    for row in snap.store.query(schema_q):
        schema_org.setdefault(row["term"].value, []).append("schema:" + row["target"].value[len(SCHEMA):])
    out = []
    for row in snap.store.query(q):
        target = row["target"].value
        wid = target.rsplit("/", 1)[1]
        term = row["term"].value
        out.append(Alignment(term[len(MG):], row["label"].value if row["label"] else term[len(MG):], wid,
                             WIKIDATA_NAMES.get(wid, ""), RELATIONS[row["how"].value],
                             tuple(sorted(schema_org.get(term, [])))))
    # classes first, then properties, each by name
    return sorted(out, key=lambda a: (not a.term[:1].isupper(), a.term.lower(), a.wikidata))


def _websites(snap: Snapshot) -> list[str]:
    q = (f"SELECT DISTINCT ?site WHERE {{ ?g <{MG}describes> ?e . ?e <{MG}website> ?site FILTER(isIRI(?site)) }} "
         f"ORDER BY ?site LIMIT {EXAMPLE_SITES}")
    return [row["site"].value for row in snap.store.query(q, use_default_graph_as_union=True)]


def _links(snap: Snapshot) -> list[tuple[str, str]]:
    q = (f"SELECT ?entity ?item WHERE {{ GRAPH <{linkset_graph(snap.iris)}> {{ ?entity <{OWL}sameAs> ?item }} }} "
         "ORDER BY ?entity")
    return [(row["entity"].value, row["item"].value[len(WD):]) for row in snap.store.query(q)
            if row["item"].value.startswith(WD)]


def _facts(snap: Snapshot) -> dict:
    return {"alignments": _alignments(snap), "websites": _websites(snap), "links": _links(snap)}


@bp.get("/wikidata")
def wikidata() -> str:
    """How to join this graph with Wikidata: alignments, links, worked federated queries, requirements met."""
    snap = current_snapshot()
    facts = per_build(snap, "wikidata-page", lambda: _facts(snap))
    cfg = current_app.config
    endpoint = url_for("sparql.endpoint", _external=True)
    allowlist = tuple(cfg.get("SERVICE_ALLOWLIST") or ())
    service = WIKIDATA_QUERY_SERVICE if WIKIDATA_QUERY_SERVICE in allowlist else (
        allowlist[0] if allowlist else WIKIDATA_QUERY_SERVICE)
    links = facts["links"]
    ours = [WorkedQuery("by-website", "Our organisations and funders, matched to Wikidata by official website",
                        "Joins our mg:website with Wikidata's official website (P856). The websites are listed "
                        "inside the SERVICE block so that Wikidata is asked about these sites only; only the "
                        "spelling written here matches (Wikidata may write http:// or leave out a slash).",
                        website_join_query(facts["websites"], service), True)]
    if links:
        ours.append(WorkedQuery("by-link", "What Wikidata says about our linked entities",
                                "Follows the reviewed owl:sameAs links and asks Wikidata for each item's inception, "
                                "country and website.", linked_items_query([q for _, q in links], service), True))
    theirs = [WorkedQuery("wdqs-by-website", "Wikidata items with the official website of one of our organisations",
                          "Run on the Wikidata Query Service: our endpoint answers the inner SELECT, Wikidata "
                          "joins it with P856 and adds English labels.", from_wikidata_by_website(endpoint), False),
              WorkedQuery("wdqs-by-link", "Campaigns led by organisations linked to Wikidata, with their countries",
                          "Run on the Wikidata Query Service: it follows our owl:sameAs links to its own items.",
                          from_wikidata_by_link(endpoint), False)]
    cap = int(cfg.get("SERVICE_MAX_RESULTS") or cfg["MAX_RESULTS"])
    return render_template(
        "wikidata.html", title="Using this graph with Wikidata", alignments=facts["alignments"], links=links,
        ours=ours, theirs=theirs, endpoint=endpoint, allowlist=allowlist, timeout=cfg["QUERY_TIMEOUT"], cap=cap,
        wikidata_allowed=WIKIDATA_QUERY_SERVICE in allowlist, linkset=linkset_graph(snap.iris),
        wdqs_link=lambda text: "https://query.wikidata.org/#" + quote(text, safe=""))
