"""Assembling the dataset from mapped entities: one named graph per entity file.

An entity's graph holds everything derived from its file — what the file states,
the reverse of each of its references (so ``org mg:leadsCampaign camp`` sits in
the campaign's graph, next to the ``lead_orgs`` statement it comes from), its
body mentions and their reverses, and the graph's provenance (file, blob,
corpus commit). Replacing a file's graph therefore replaces exactly what the
file says, which is what incremental builds and per-entity provenance need.
The default graph of the SPARQL endpoint is the union of all graphs.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from pyoxigraph import Literal, NamedNode, Quad, Triple

from . import schema
from .integrity import CorpusIndex
from .mapping import P, RDF_TYPE, MappedEntity
from .source import Provenance
from .vocab import DCT, PROV, RDFS, SKOS, DataIris

PROV_DERIVED = NamedNode(PROV + "wasDerivedFrom")
PROV_ENTITY = NamedNode(PROV + "Entity")
DCT_SOURCE = NamedNode(DCT + "source")
SKOS_CONCEPT = NamedNode(SKOS + "Concept")
SKOS_SCHEME = NamedNode(SKOS + "ConceptScheme")
SKOS_IN_SCHEME = NamedNode(SKOS + "inScheme")
SKOS_PREF = NamedNode(SKOS + "prefLabel")
SKOS_ALT = NamedNode(SKOS + "altLabel")
RDFS_LABEL = NamedNode(RDFS + "label")


@dataclass
class EntityGraph:
    entity: MappedEntity
    graph: NamedNode
    quads: list[Quad]


def entity_graphs(index: CorpusIndex, provenance: Provenance, iris: DataIris,
                  only: set[str] | None = None) -> Iterator[EntityGraph]:
    """One graph per loaded entity (or per id in ``only``), in id order."""
    for entity_id in sorted(index.by_id if only is None else only & index.by_id.keys()):
        e = index.by_id[entity_id]
        g = NamedNode(iris.graph(e.id))
        triples = entity_triples(e, index, provenance, iris, g)
        yield EntityGraph(e, g, [Quad(t.subject, t.predicate, t.object, g) for t in triples])


def entity_triples(e: MappedEntity, exists: Container[str], provenance: Provenance, iris: DataIris,
                   g: NamedNode) -> list[Triple]:
    """What the graph ``g`` of entity ``e`` holds: its triples, the reverse of each reference and
    its mentions (to the ids ``exists`` holds), and the graph's provenance."""
    triples: list[Triple] = list(e.triples)
    triples.extend(derived_triples(e, exists, iris))
    triples.extend(_provenance(e, g, provenance))
    return triples


def derived_triples(e: MappedEntity, exists: Container[str], iris: DataIris) -> list[Triple]:
    """The reverse of each of ``e``'s references and its mentions, to the ids ``exists`` holds."""
    triples: list[Triple] = []
    for ref in e.references:
        if ref.target_id in exists and ref.target_id != e.id:
            rel = schema.RELATIONS[ref.prop]
            triples.append(Triple(NamedNode(iris.entity(ref.target_id)), P(rel.inverse), e.iri))
    for target_id in mention_targets(e, exists):
        target = NamedNode(iris.entity(target_id))
        triples.append(Triple(e.iri, P("mentions"), target))
        triples.append(Triple(target, P("mentionedBy"), e.iri))
    return triples


def mention_targets(e: MappedEntity, index: Container[str]) -> list[str]:
    """The entities ``e`` mentions: linked to, existing, not itself; each once, in link order."""
    out: list[str] = []
    for ref in e.mentions:
        if ref.target_id != e.id and ref.target_id in index and ref.target_id not in out:
            out.append(ref.target_id)
    return out


def _provenance(e: MappedEntity, g: NamedNode, provenance: Provenance) -> list[Triple]:
    out = [
        Triple(g, RDF_TYPE, P("EntityGraph")),
        Triple(g, RDF_TYPE, PROV_ENTITY),
        Triple(g, P("describes"), e.iri),
        Triple(g, P("sourcePath"), Literal(e.path)),
    ]
    if e.blob:
        out.append(Triple(g, P("sourceBlob"), Literal(e.blob)))
    if provenance.commit:
        out.append(Triple(g, P("corpusCommit"), Literal(provenance.commit)))
        url = provenance.file_url(e.path)
        if url:
            out.append(Triple(g, PROV_DERIVED, NamedNode(url)))
    return out


def tag_labels(entities: Iterable[tuple[str, list[str]]], iris: DataIris) -> dict[str, list[str]]:
    """Tag IRI -> its spellings in first-use order, from (entity id, tags) pairs."""
    labels: dict[str, list[str]] = {}
    for _, tags in sorted(entities, key=lambda pair: pair[0]):
        for label in tags:
            spellings = labels.setdefault(iris.tag(label), [])
            if label not in spellings:
                spellings.append(label)
    return labels


def vocabulary_graph(index: CorpusIndex, iris: DataIris,
                     labels: dict[str, list[str]] | None = None) -> list[Quad]:
    """The tag scheme: every tag used, as a SKOS concept with its label."""
    g = NamedNode(iris.vocabulary_graph)
    scheme = NamedNode(iris.tag_scheme)
    quads = [Quad(scheme, RDF_TYPE, SKOS_SCHEME, g),
             Quad(scheme, RDFS_LABEL, Literal("Movement Graph tags"), g)]
    if labels is None:
        labels = tag_labels(((e.id, e.tags) for e in index.by_id.values()), iris)
    for iri in sorted(labels):
        tag = NamedNode(iri)
        first, *others = labels[iri]
        quads += [Quad(tag, RDF_TYPE, SKOS_CONCEPT, g), Quad(tag, SKOS_PREF, Literal(first), g),
                  Quad(tag, SKOS_IN_SCHEME, scheme, g), Quad(tag, RDFS_LABEL, Literal(first), g)]
        # spellings that differ only in case or punctuation name the same concept
        quads += [Quad(tag, SKOS_ALT, Literal(other), g) for other in sorted(others)]
    return quads
