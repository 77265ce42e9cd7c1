"""The ontology and the shapes agree with what the mapper emits."""

from __future__ import annotations

import pytest
from rdflib import OWL, RDF, RDFS, SH, Graph, URIRef

from mg_rdf import schema
from mg_rdf.config import ONTOLOGY_FILES, SHAPES_PATH

MG = "https://w3id.org/movement-graph/ontology#"


@pytest.fixture(scope="module")
def ontology() -> Graph:
    g = Graph()
    for path in ONTOLOGY_FILES:   # mg.ttl and the audit and change vocabularies
        g.parse(path)
    return g


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(SHAPES_PATH)


def declared_with_docs(g: Graph, local: str) -> bool:
    term = URIRef(MG + local)
    return (term, RDFS.label, None) in g and (term, RDFS.comment, None) in g


def test_ontology_has_version_licence_and_description(ontology):
    onto = URIRef("https://w3id.org/movement-graph/ontology")
    assert (onto, RDF.type, OWL.Ontology) in ontology
    assert (onto, OWL.versionInfo, None) in ontology
    assert (onto, URIRef("http://purl.org/dc/terms/license"), None) in ontology
    assert (onto, URIRef("http://purl.org/dc/terms/description"), None) in ontology


def test_every_type_and_field_has_a_documented_term(ontology):
    for t in schema.TYPES.values():
        assert declared_with_docs(ontology, t.cls), t.cls
        for f in t.fields.values():
            if f.name != "type":
                assert declared_with_docs(ontology, f.prop), f"{t.name}.{f.name} -> mg:{f.prop}"
    for table in (schema.SOURCE_FIELDS, schema.AFFILIATION_FIELDS, schema.PROFILE_FIELDS, schema.EFFECT_FIELDS):
        for prop in table.values():
            assert declared_with_docs(ontology, prop), prop
    for vocab, values in schema.VOCABULARIES.items():
        for v in values:
            assert (URIRef(MG + schema.concept(vocab, v)), None, None) in ontology, schema.concept(vocab, v)


def test_every_relation_has_its_inverse_declared_and_symmetric_pairs_are_symmetric(ontology):
    for rel in schema.RELATIONS.values():
        p, inv = URIRef(MG + rel.prop), URIRef(MG + rel.inverse)
        if rel.symmetric:
            assert (p, RDF.type, OWL.SymmetricProperty) in ontology, rel.prop
        else:
            assert (p, OWL.inverseOf, inv) in ontology or (inv, OWL.inverseOf, p) in ontology, rel.prop


def test_every_predicate_in_the_built_graph_is_declared(head_store, ontology):
    q = f"""SELECT DISTINCT ?p WHERE {{ GRAPH ?g {{ ?s ?p ?o }}
            FILTER(STRSTARTS(STR(?g), "https://w3id.org/movement-graph/graph/")) FILTER(STRSTARTS(STR(?p), "{MG}")) }}"""
    used = {r["p"].value.removeprefix(MG) for r in head_store.query(q)}
    assert len(used) > 60
    missing = sorted(p for p in used if not declared_with_docs(ontology, p))
    # provenance and dataset-description terms are ours too
    assert missing == [], missing


def test_shapes_target_every_entity_type(shapes):
    targets = {str(o).removeprefix(MG) for o in shapes.objects(None, SH.targetClass)}
    assert {t.cls for t in schema.TYPES.values()} <= targets
    assert {"SourceCitation", "Affiliation", "PublicProfile", "StrategyEffect"} <= targets
