"""A remote SPARQL 1.1 server as the store: for when one machine is not enough.

``RemoteStore`` speaks the SPARQL 1.1 Protocol (query and update) and offers the
part of pyoxigraph's ``Store`` interface mg-rdf uses — ``query``,
``quads_for_pattern``, ``named_graphs``, ``len`` — returning pyoxigraph's own
result objects (answers are parsed with ``pyoxigraph.parse_query_results``), so
the web app, the query workers and the CLI work on it unchanged.

The store URL is the server's query endpoint; its update endpoint is the same
URL with the last path segment replaced by ``update`` (Oxigraph:
``http://host:7878/query`` -> ``/update``; Fuseki: ``/ds/query`` -> ``/ds/update``),
or given explicitly.

A build replaces the dataset with ONE SPARQL Update request (``DROP`` of the
graphs it replaces, then ``INSERT DATA``), which servers that run an update
request as one transaction — Oxigraph, Fuseki, GraphDB — apply atomically:
readers see the old build or the new one, never half of each. The union of the
named graphs must be the server's default graph for plain queries: Oxigraph
takes the ``union-default-graph`` parameter mg-rdf sends; Fuseki/TDB2 needs
``tdb2:unionDefaultGraph true`` in its configuration.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from pyoxigraph import (DefaultGraph, NamedNode, Quad, QueryResultsFormat, RdfFormat, Triple, parse,
                        parse_query_results, serialize)

from . import __version__
from .problems import MgRdfError
from .vocab import MG

USER_AGENT = f"mg-rdf/{__version__} (https://github.com/Make-AI-Good/movement-graph)"
SOLUTIONS = "application/sparql-results+json"
TRIPLES = "application/n-triples"
GRAPH_DIGEST = MG + "graphDigest"


def is_remote(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("http://", "https://"))


def update_endpoint_for(query_url: str) -> str:
    parts = urlsplit(query_url)
    path = parts.path.rstrip("/")
    head = path.rsplit("/", 1)[0] if "/" in path else ""
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/update", "", ""))


class RemoteTriples:
    """The triples of a CONSTRUCT/DESCRIBE answer (an iterator, like pyoxigraph's QueryTriples)."""

    def __init__(self, data: bytes):
        self._quads = parse(data, format=RdfFormat.N_TRIPLES)

    def __iter__(self) -> Iterator:
        return (q.triple for q in self._quads)


class RemoteStore:
    """A SPARQL 1.1 endpoint used through the subset of ``pyoxigraph.Store`` mg-rdf needs."""

    def __init__(self, query_url: str, update_url: str | None = None, timeout: float = 60.0,
                 union_parameter: bool = True):
        self.query_url = query_url
        self.update_url = update_url or update_endpoint_for(query_url)
        self.timeout = timeout
        self.union_parameter = union_parameter
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def __repr__(self) -> str:
        return f"RemoteStore({self.query_url!r})"

    # -- reading -----------------------------------------------------------------
    def query(self, query: str, *, prefixes: dict[str, str] | None = None, use_default_graph_as_union: bool = False,
              default_graph: Any = None, named_graphs: Any = None, substitutions: Any = None,
              base_iri: str | None = None, timeout: float | None = None) -> Any:
        """Run a query remotely; the answer is a pyoxigraph QuerySolutions/QueryBoolean or triples."""
        if substitutions:
            raise NotImplementedError("substitutions are not sent to a remote store; bind with VALUES")
        text = query
        if base_iri:
            text = f"BASE <{base_iri}>\n{text}"
        if prefixes:
            text = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in prefixes.items()) + text
        params: list[tuple[str, str]] = []
        if default_graph is not None:
            graphs = default_graph if isinstance(default_graph, list) else [default_graph]
            params += [("default-graph-uri", g.value) for g in graphs if isinstance(g, NamedNode)]
        if named_graphs is not None:
            params += [("named-graph-uri", g.value) for g in named_graphs]
        if use_default_graph_as_union and default_graph is None and self.union_parameter:
            params.append(("union-default-graph", ""))
        try:
            r = self.session.post(self.query_url, params=params, data=text.encode("utf-8"),
                                  headers={"Content-Type": "application/sparql-query; charset=utf-8",
                                           "Accept": f"{SOLUTIONS}, {TRIPLES};q=0.9"},
                                  timeout=timeout or self.timeout)
        except requests.RequestException as e:
            raise MgRdfError(f"{self.query_url}: the remote store cannot be reached ({e})") from None
        if r.status_code == 400:
            raise SyntaxError(r.text.strip()[:2000])
        if r.status_code != 200:
            raise MgRdfError(f"{self.query_url}: HTTP {r.status_code}: {r.text.strip()[:500]}")
        kind = r.headers.get("Content-Type", "").split(";")[0].strip()
        if kind == SOLUTIONS:
            return parse_query_results(r.content, format=QueryResultsFormat.JSON)
        if kind in (TRIPLES, "text/plain"):
            return RemoteTriples(r.content)
        raise MgRdfError(f"{self.query_url}: unexpected answer type {kind!r}")

    def quads_for_pattern(self, subject: Any, predicate: Any, object: Any, graph_name: Any = None) -> Iterator[Quad]:
        """Quads matching a pattern (None = any), from the named graphs."""
        binds = []
        for var, term in (("s", subject), ("p", predicate), ("o", object), ("g", graph_name)):
            if term is not None and not isinstance(term, DefaultGraph):
                binds.append(f"VALUES ?{var} {{ {_sparql_term(term)} }}")
        q = "SELECT ?s ?p ?o ?g WHERE { " + " ".join(binds) + " GRAPH ?g { ?s ?p ?o } }"
        for row in self.query(q):
            yield Quad(row["s"], row["p"], row["o"], row["g"])

    def named_graphs(self) -> Iterator[NamedNode]:
        for row in self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"):
            yield row["g"]

    def __len__(self) -> int:
        rows = list(self.query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"))
        return int(rows[0]["n"].value) if rows else 0

    # -- writing -----------------------------------------------------------------
    def update(self, text: str | bytes, timeout: float | None = None) -> None:
        body = text.encode("utf-8") if isinstance(text, str) else text
        try:
            r = self.session.post(self.update_url, data=body,
                                  headers={"Content-Type": "application/sparql-update; charset=utf-8"},
                                  timeout=timeout or self.timeout)
        except requests.RequestException as e:
            raise MgRdfError(f"{self.update_url}: the remote store cannot be reached ({e}); "
                             "nothing was changed") from None
        if r.status_code not in (200, 204):
            raise MgRdfError(f"{self.update_url}: the update was refused (HTTP {r.status_code}: "
                             f"{r.text.strip()[:500]}); nothing was changed")

    def recorded_digests(self, build_graph: str) -> dict[str, str]:
        """Graph IRI -> ``mg:graphDigest`` as the last build recorded them in ``build_graph``."""
        q = f"SELECT ?g ?d WHERE {{ GRAPH <{build_graph}> {{ ?g <{GRAPH_DIGEST}> ?d }} }}"
        return {row["g"].value: row["d"].value for row in self.query(q) if isinstance(row["g"], NamedNode)}

    def replace_graphs(self, drop: Iterable[NamedNode], quads: Iterable[Quad] | dict[NamedNode, bytes],
                       timeout: float | None = None) -> int:
        """In one update request: drop ``drop`` and every graph ``quads`` write, then insert ``quads``
        (quads, or each graph's triples as N-Triples, as ``graph_texts`` makes them). Returns the
        number of quads sent."""
        texts = quads if isinstance(quads, dict) else graph_texts(quads)
        n = sum(nt.count(b"\n") for nt in texts.values())
        graphs = {g.value: g for g in drop} | {g.value: g for g in texts}
        parts = [f"DROP SILENT GRAPH <{g}>" for g in sorted(graphs)]
        inserts = []
        for g, nt in texts.items():
            inserts.append(f"GRAPH <{g.value}> {{\n{nt.decode('utf-8')}}}")
        if inserts:
            parts.append("INSERT DATA {\n" + "\n".join(inserts) + "\n}")
        self.update(" ;\n".join(parts), timeout=timeout)
        return n


def graph_texts(quads: Iterable[Quad]) -> dict[NamedNode, bytes]:
    """Each graph's triples as N-Triples (one line each), by graph name."""
    by_graph: dict[NamedNode, list[Triple]] = defaultdict(list)
    for q in quads:
        by_graph[q.graph_name].append(q.triple)
    return {g: serialize(triples, format=RdfFormat.N_TRIPLES) for g, triples in by_graph.items()}


def graph_digest(ntriples: bytes) -> str:
    """SHA-256 (hex) of a graph's distinct N-Triples lines, sorted, joined by newlines
    (``mg:graphDigest``). Blank nodes count by their labels: the graphs mg-rdf writes label them
    the same in every build (``build._static_graph``); a graph whose labels did change is only
    sent again."""
    lines = sorted(set(ntriples.splitlines()))
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def _sparql_term(term: Any) -> str:
    """A pyoxigraph term as SPARQL text (its N-Triples form is valid SPARQL)."""
    return str(term)


def open_store(location: str) -> Any:
    """A read-only pyoxigraph Store for a build directory, or a RemoteStore for a URL."""
    if is_remote(location):
        return RemoteStore(location)
    from pyoxigraph import Store

    return Store.read_only(location)
