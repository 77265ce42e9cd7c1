"""The flattened shapes (validation.flatten, a speed-up for pyshacl) report exactly what the
shapes file as written reports: same focus nodes, paths, values, source shapes, components,
messages and severities — on the real corpus and on a copy of it with thousands of defects
planted at random (a fixed seed), one partition at a time as the build runs them."""

from __future__ import annotations

import random

import pyshacl
import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.namespace import RDF, SH, XSD

from mg_rdf import validation
from mg_rdf.config import SHAPES_PATH

MG = "https://w3id.org/movement-graph/ontology#"


def _shapes_pair(types: tuple[str, ...]) -> tuple[Graph, Graph]:
    """The partition's shapes as written, and the same graph flattened (same blank nodes),
    in the order the build does it: flatten the file, then keep only the partition's targets."""
    written = Graph().parse(SHAPES_PATH)
    flat = Graph()
    for prefix, ns in written.namespaces():   # pyshacl's generated messages use the prefixes
        flat.bind(prefix, ns)
    for t in written:
        flat.add(t)
    validation.flatten(flat)
    keep = {URIRef(MG + validation.schema.TYPES[t].cls) for t in types}
    classes = {URIRef(MG + t.cls) for t in validation.schema.TYPES.values()}
    for g in (written, flat):
        for shape, _, cls in list(g.triples((None, SH.targetClass, None))):
            if cls in classes and cls not in keep:
                g.remove((shape, SH.targetClass, cls))
    return written, flat


def _results(data: Graph, shapes: Graph) -> set[tuple]:
    copy = Graph()
    for t in data:
        copy.add(t)
    _, report, _ = pyshacl.validate(copy, shacl_graph=shapes, inference="none", inplace=True,
                                    advanced=False, allow_warnings=True, allow_infos=True)
    keys = (SH.focusNode, SH.resultPath, SH.value, SH.sourceShape, SH.sourceConstraintComponent,
            SH.resultMessage, SH.resultSeverity)
    return {tuple(report.value(r, k) for k in keys) for r in report.subjects(RDF.type, SH.ValidationResult)}


def _plant_defects(data: Graph, seed: int) -> Graph:
    """Remove required values, duplicate single ones, give wrong datatypes and wrong targets."""
    rnd = random.Random(seed)
    g = Graph()
    for t in data:
        g.add(t)
    triples = sorted(g, key=str)
    for s, p, o in rnd.sample(triples, len(triples) // 10):
        kind = rnd.randrange(5)
        if kind == 0:
            g.remove((s, p, o))
        elif kind == 1:
            g.add((s, p, Literal("second value")))
        elif kind == 2:
            g.remove((s, p, o))
            g.add((s, p, Literal("2024-13", datatype=XSD.gYearMonth) if rnd.random() < 0.5 else Literal(7)))
        elif kind == 3:
            g.add((s, p, URIRef(MG + "status-nonsense")))
        else:
            g.add((s, p, BNode()))
    return g


@pytest.fixture(scope="module")
def partitions(head_analysis, iris):
    index = head_analysis.index
    out = []
    for types in validation.PARTITIONS:
        mine = [e for e in head_analysis.entities if e.type in types]
        out.append((types, validation._data_graph(mine, index, iris)[0]))
    return out


def test_flatten_moves_every_property_shape_to_the_classes(partitions):
    written, flat = _shapes_pair(validation.PARTITIONS[0])
    assert len(list(written.triples((None, SH.property, None)))) > 100
    assert list(flat.triples((None, SH.property, None))) == []
    name = URIRef("https://w3id.org/movement-graph/shapes#name")
    assert set(flat.objects(name, SH.targetClass)) == {
        URIRef(MG + validation.schema.TYPES[t].cls) for t in validation.PARTITIONS[0]}


@pytest.mark.parametrize("part", [0, 1])
def test_real_corpus_reports_the_same(partitions, part):
    types, data = partitions[part]
    written, flat = _shapes_pair(types)
    expected = _results(data, written)
    assert expected, "the real corpus has SHACL results (reference types): the comparison is not empty"
    assert _results(data, flat) == expected


@pytest.mark.parametrize("part", [0, 1])
def test_planted_defects_are_reported_the_same(partitions, part):
    types, data = partitions[part]
    written, flat = _shapes_pair(types)
    bad = _plant_defects(data, seed=part)
    expected = _results(bad, written)
    assert len(expected) > 1000
    assert _results(bad, flat) == expected


def test_the_shapes_file_read_by_pyoxigraph_is_rdflibs_graph():
    """validation.shapes_file_graph (pyoxigraph's Turtle parser) gives the graph rdflib's parser
    gives: the same triples up to blank node labels, and the same prefixes (pyshacl's messages
    use them)."""
    from rdflib.compare import isomorphic

    ours, rdflibs = validation.shapes_file_graph(), Graph().parse(SHAPES_PATH)
    assert len(ours) == len(rdflibs) > 500
    assert isomorphic(ours, rdflibs)
    assert sorted(ours.namespaces()) == sorted(rdflibs.namespaces())
    assert any(isinstance(s, BNode) for s in ours.subjects())
