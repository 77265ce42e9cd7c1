"""The query page: a SPARQL editor, the example queries, results as a table.

The page itself is a form that GETs ``/sparql`` (so without JavaScript it still
downloads results); ``static/query.js`` runs queries in place with ``fetch`` and
``static/sparql-editor.js`` highlights the text. The examples are the shipped
named queries (``queries/*.rq``), their parameters filled with the example
values their headers declare, bound by ``VALUES`` lines the reader can edit; a
few built-in starters stand in when there are none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, render_template, request

from .. import config
from ..problems import MgRdfError
from ..vocab import PREFIXES, DataIris

bp = Blueprint("query_page", __name__)


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    text: str


STARTERS = (
    Example("count-by-type", "Entities by type", "How many campaigns, organisations, people, … the graph holds.",
            "SELECT ?type (COUNT(DISTINCT ?entity) AS ?entities)\nWHERE {\n  ?graph mg:describes ?entity .\n"
            "  ?entity a ?type .\n}\nGROUP BY ?type\nORDER BY DESC(?entities)\n"),
    Example("campaign-leads", "Campaigns and who leads them", "Each campaign with its lead organisations.",
            "SELECT ?campaign ?name ?lead ?leadName\nWHERE {\n  ?campaign a mg:Campaign ;\n"
            "            mg:name ?name ;\n            mg:leadOrganization ?lead .\n  ?lead mg:name ?leadName .\n}\n"
            "ORDER BY ?name\nLIMIT 100\n"),
    Example("most-connected", "Most connected organisations", "Organisations by the number of campaigns they "
            "lead or join.",
            "SELECT ?org ?name (COUNT(DISTINCT ?campaign) AS ?campaigns)\nWHERE {\n  ?org a mg:Organization ;\n"
            "       mg:name ?name ;\n       mg:leadsCampaign|mg:organizationParticipatesIn ?campaign .\n}\n"
            "GROUP BY ?org ?name\nORDER BY DESC(?campaigns)\nLIMIT 20\n"),
    Example("describe-banbs", "Everything about one campaign", "The #BanBS campaign's own triples, as a graph "
            "(CONSTRUCT).",
            "CONSTRUCT { ?campaign ?p ?o }\nWHERE {\n  BIND(<{BASE}id/camp-access-now-ban-biometric-surveillance-"
            "global-2021-ongoing> AS ?campaign)\n  ?campaign ?p ?o .\n  FILTER(?p != mg:body)\n}\n"),
)

DOWNLOADS = {  # format parameter -> label, by query form
    "results": (("json", "JSON"), ("xml", "XML"), ("csv", "CSV"), ("tsv", "TSV")),
    "graph": (("ttl", "Turtle"), ("nt", "N-Triples"), ("jsonld", "JSON-LD"), ("rdf", "RDF/XML")),
}


@bp.get("/query")
def query():
    """The editor, prefilled from ``?query=`` (entity pages link here with their SPARQL)."""
    from . import current_snapshot

    examples = example_queries()
    iris: DataIris = current_app.extensions["mg_rdf.iris"]
    entity_count = _entity_count(current_snapshot)
    text = request.args.get("query") or (examples[0].text if examples else "")
    root = request.script_root
    return render_template(
        "query.html", title="Query", query_text=text, examples=examples, prefixes=sorted(PREFIXES.items()),
        downloads=DOWNLOADS, base=iris.base, entity_root=root + "/id/", endpoint=root + "/sparql",
        entity_count=entity_count)


def example_queries() -> list[Example]:
    """The named queries as runnable examples, or the built-in starters when there are none."""
    iris: DataIris = current_app.extensions["mg_rdf.iris"]
    named = _named_queries()
    if not named:
        return [Example(e.name, e.title, e.description, e.text.replace("{BASE}", iris.base)) for e in STARTERS]
    return [Example(q.name, q.title or q.name, q.description or "", example_text(q, iris)) for q in named]


_loaded: dict[str, tuple[Any, list[Any]]] = {"state": (None, [])}   # (files key, queries)


def _named_queries() -> list[Any]:
    """The shipped named queries, read again only when a file in queries/ changes.

    Reading and checking them takes ~0.1 s, too much for every page view.
    """
    try:  # the named-query module is written separately; the page works without it
        from ..named_queries import load_queries
    except ImportError:
        return []
    files = sorted(config.QUERIES_DIR.glob("*.rq"))
    key = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if key != _loaded["state"][0]:
        try:
            queries = list(load_queries(config.QUERIES_DIR))
        except (MgRdfError, OSError) as e:  # a broken .rq file must not take the query page down
            current_app.logger.warning("named queries not loaded: %s", e)
            queries = []
        _loaded["state"] = (key, queries)   # one assignment: a reader sees the old pair or the new
    return _loaded["state"][1]


def example_text(q: Any, iris: DataIris) -> str:
    """A named query ready to run: its example (and default) parameter values bound by VALUES lines.

    The values go through the named-query module's own checks and become RDF
    terms, written one parameter a line at the top of the WHERE group so the
    reader sees what to change; the rest of the text is the file's.
    """
    try:
        from ..named_queries import bind_arguments

        bound = bind_arguments(q, q.example_arguments(), iris)
        at = q.values_at
    except (MgRdfError, AttributeError, ImportError) as e:  # an example that does not bind shows as written
        current_app.logger.warning("example values for %s not bound: %s", getattr(q, "name", q), e)
        return q.text
    if not bound or at < 0:
        return q.text
    lines = "".join(f"\n  VALUES ?{name} {{ {term} }}   # example value of the parameter {name}"
                    for name, term in bound.items())
    return q.text[:at] + lines + q.text[at:]


def _entity_count(snapshot_fn) -> int | None:
    try:
        return len(snapshot_fn().entities)
    except MgRdfError:  # no store built yet: the page still shows the editor
        return None
