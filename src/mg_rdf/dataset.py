"""The dataset's description (VoID + DCAT): title, licence and attribution,
source repository and commit, counts by class, endpoints and dumps.

Everything in this graph follows from the input, so two builds of the same
input describe themselves with the same bytes; the wall-clock build record
(``build_graph``) is kept apart and left out of dumps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pyoxigraph import Literal, NamedNode, Quad, Store

from . import schema
from .mapping import P, RDF_TYPE
from .source import Provenance
from .vocab import DCAT, DCT, MG, ONTOLOGY_IRI, PROV, RDFS, SCHEMA, VOID, XSD, DataIris

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CORPUS_TITLE = "Make AI Good Movement Graph"
XSD_INTEGER = NamedNode(XSD + "integer")
XSD_DATETIME = NamedNode(XSD + "dateTime")


def attribution(provenance: Provenance, title: str = CORPUS_TITLE) -> str:
    """The CC BY 4.0 attribution line: name, link, commit (no local paths)."""
    pin = f"commit {provenance.pin}" if provenance.commit else "uncommitted working tree"
    link = f", {provenance.repository}" if provenance.repository else ""
    return f"{title}{link} ({pin}). Licensed CC BY 4.0."


@dataclass
class DatasetFacts:
    provenance: Provenance
    title: str
    entities_by_type: Counter[str]
    triples: int
    modified: str | None   # ISO date or dateTime of the input (commit date, or newest last_updated)


def _lit(value: object) -> Literal:
    if isinstance(value, int):
        return Literal(str(value), datatype=XSD_INTEGER)
    return Literal(str(value))


def dataset_graph(facts: DatasetFacts, iris: DataIris) -> list[Quad]:
    g = NamedNode(iris.dataset_graph)
    d = NamedNode(iris.dataset)
    p = facts.provenance

    def q(s: NamedNode, pred: str, o: NamedNode | Literal) -> Quad:
        return Quad(s, NamedNode(pred), o, g)

    quads = [
        q(d, RDF_TYPE.value, NamedNode(VOID + "Dataset")),
        q(d, RDF_TYPE.value, NamedNode(DCAT + "Dataset")),
        q(d, DCT + "title", Literal(facts.title)),
        q(d, RDFS + "label", Literal(facts.title)),
        q(d, DCT + "description", Literal(
            "The Movement Graph corpus as linked data: one named graph per entity file, each "
            "traceable to its file and corpus commit; built by mg-rdf.")),
        q(d, DCT + "license", NamedNode(CC_BY)),
        q(d, SCHEMA + "creditText", Literal(attribution(p, facts.title))),
        q(d, DCT + "rights", Literal(attribution(p, facts.title))),
        q(d, VOID + "uriSpace", Literal(iris.base + "id/")),
        q(d, VOID + "sparqlEndpoint", NamedNode(iris.base + "sparql")),
        q(d, VOID + "vocabulary", NamedNode(MG)),
        q(d, VOID + "triples", _lit(facts.triples)),
        q(d, VOID + "entities", _lit(sum(facts.entities_by_type.values()))),
        q(d, VOID + "rootResource", NamedNode(iris.tag_scheme)),
        q(d, DCT + "conformsTo", NamedNode(ONTOLOGY_IRI)),
    ]
    public = p.repository.startswith(("http://", "https://"))
    if public:
        quads.append(q(d, DCT + "source", NamedNode(p.repository)))
    if p.commit:
        quads.append(q(d, P("corpusCommit").value, Literal(p.commit)))
        if public:
            tree = NamedNode(f"{p.repository.rstrip('/')}/tree/{p.commit}")
            quads.append(q(d, PROV + "wasDerivedFrom", tree))
    if p.rev:
        quads.append(q(d, P("corpusRevision").value, Literal(p.rev)))
    if facts.modified:
        dtype = XSD_DATETIME if "T" in facts.modified else NamedNode(XSD + "date")
        quads.append(q(d, DCT + "modified", Literal(facts.modified, datatype=dtype)))
    for fmt, media in (("ttl", "text/turtle"), ("nt", "application/n-triples"),
                       ("nq", "application/n-quads"), ("jsonld", "application/ld+json")):
        dump = NamedNode(f"{iris.base}dumps/movement-graph.{fmt}.gz")
        quads += [q(d, VOID + "dataDump", dump), q(d, DCAT + "distribution", dump),
                  q(dump, RDF_TYPE.value, NamedNode(DCAT + "Distribution")),
                  q(dump, DCAT + "mediaType", Literal(media)),
                  q(dump, DCAT + "compressFormat", Literal("application/gzip"))]
    for type_name in sorted(facts.entities_by_type):
        etype = schema.TYPES.get(type_name)
        if etype is None:
            continue
        part = NamedNode(f"{iris.dataset}#class-{type_name}")
        quads += [q(d, VOID + "classPartition", part),
                  q(part, VOID + "class", P(etype.cls)),
                  q(part, VOID + "entities", _lit(facts.entities_by_type[type_name]))]
    return quads


def build_graph(iris: DataIris, started: str, seconds: float, warnings: int, violations: int) -> list[Quad]:
    """The wall-clock record of one build: queryable, but not part of dumps."""
    g = NamedNode(iris.base + "graph/build")
    b = NamedNode(iris.base + "build")
    return [
        Quad(b, RDF_TYPE, NamedNode(PROV + "Activity"), g),
        Quad(b, NamedNode(PROV + "generated"), NamedNode(iris.dataset), g),
        Quad(b, NamedNode(PROV + "startedAtTime"), Literal(started, datatype=XSD_DATETIME), g),
        Quad(b, P("buildSeconds"), Literal(f"{seconds:.3f}", datatype=NamedNode(XSD + "decimal")), g),
        Quad(b, P("warningCount"), _lit(warnings), g),
        Quad(b, P("violationCount"), _lit(violations), g),
    ]


def stored_attribution(store: Store, iris: DataIris) -> str:
    """The attribution line recorded in a built store's dataset description."""
    q = f"SELECT ?t WHERE {{ GRAPH <{iris.dataset_graph}> {{ <{iris.dataset}> <{SCHEMA}creditText> ?t }} }}"
    for row in store.query(q):
        return row["t"].value
    return f"{CORPUS_TITLE}. Licensed CC BY 4.0."
