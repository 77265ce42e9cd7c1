"""Running SPARQL over a store for the CLI, and formatting what comes back.

The default graph of every query is the union of all named graphs, and the
project's prefixes (mg:, schema:, skos:, …) are declared, so a plain query sees
the whole dataset without ceremony.
"""

from __future__ import annotations

import shutil
from typing import Union

from pyoxigraph import (Literal, NamedNode, QueryBoolean, QueryResultsFormat, QuerySolutions, QueryTriples,
                        RdfFormat, Store, serialize)

from .problems import MgRdfError
from .vocab import MG, PREFIXES, DataIris

QueryResult = Union[QuerySolutions, QueryBoolean, QueryTriples]


def run_query(store: Store, sparql: str, base: str | None = None) -> QueryResult:
    try:
        return store.query(sparql, prefixes=PREFIXES, use_default_graph_as_union=True, base_iri=base)
    except SyntaxError as e:
        raise MgRdfError(f"SPARQL syntax error: {e}") from None


_RESULT_FORMATS = {"csv": QueryResultsFormat.CSV, "tsv": QueryResultsFormat.TSV,
                   "json": QueryResultsFormat.JSON, "xml": QueryResultsFormat.XML}


def format_results(result: QueryResult, fmt: str) -> bytes:
    if isinstance(result, QueryTriples):
        rdf = {"json": RdfFormat.JSON_LD, "xml": RdfFormat.RDF_XML}.get(fmt, RdfFormat.TURTLE)
        return serialize(result, format=rdf, prefixes=PREFIXES if rdf is not RdfFormat.RDF_XML else None)
    if fmt == "table":
        return _table(result).encode()
    return result.serialize(format=_RESULT_FORMATS[fmt])


def _cell(term: object) -> str:
    if term is None:
        return ""
    if isinstance(term, NamedNode):
        for prefix, ns in PREFIXES.items():
            if term.value.startswith(ns) and "/" not in term.value[len(ns):]:
                return f"{prefix}:{term.value[len(ns):]}"
        return term.value
    if isinstance(term, Literal):
        return term.value
    return str(term)


def _table(result: QuerySolutions | QueryBoolean) -> str:
    if isinstance(result, QueryBoolean):
        return ("true" if bool(result) else "false") + "\n"
    names = [v.value for v in result.variables]
    rows = [[_cell(row[n]).replace("\n", " ") for n in names] for row in result]
    width = max(40, shutil.get_terminal_size((120, 20)).columns)
    cap = max(12, (width - 3 * len(names)) // max(1, len(names)))
    widths = [min(cap, max([len(n)] + [len(r[i]) for r in rows])) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return " | ".join((c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(names), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def store_stats(store: Store, iris: DataIris) -> dict:
    """What `mg-rdf stats` prints: counts by type, triples, graphs and the dataset's provenance."""
    by_type = {}
    q = f"""SELECT ?c (COUNT(DISTINCT ?e) AS ?n) WHERE {{ ?e a ?c . FILTER(STRSTARTS(STR(?e), "{iris.base}id/")
            && !CONTAINS(STR(?e), "#")) }} GROUP BY ?c ORDER BY ?c"""
    for row in store.query(q, use_default_graph_as_union=True):
        c = row["c"].value
        if c.startswith(MG):
            by_type[c[len(MG):]] = int(row["n"].value)
    meta = {}
    q = f"SELECT ?p ?o WHERE {{ GRAPH <{iris.dataset_graph}> {{ <{iris.dataset}> ?p ?o }} }}"
    wanted = {MG + "corpusCommit": "commit", "http://purl.org/dc/terms/modified": "modified",
              "https://schema.org/creditText": "attribution", "http://purl.org/dc/terms/title": "title"}
    for row in store.query(q):
        key = wanted.get(row["p"].value)
        if key:
            meta[key] = row["o"].value
    build = {}
    q = f"SELECT ?p ?o WHERE {{ GRAPH <{iris.base}graph/build> {{ <{iris.base}build> ?p ?o }} }}"
    for row in store.query(q):
        p = row["p"].value.rsplit("#", 1)[-1]
        if p in ("startedAtTime", "buildSeconds", "warningCount", "violationCount"):
            build[p] = row["o"].value
    graphs = sum(1 for _ in store.named_graphs())
    return {"title": meta.get("title"), "entities": sum(by_type.values()), "by type": by_type,
            "quads": len(store), "graphs": graphs, "commit": meta.get("commit"),
            "modified": meta.get("modified"), "attribution": meta.get("attribution"), "last build": build}
