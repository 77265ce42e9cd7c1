"""pyshacl's data graph lives in validation._DataStore (rdflib's SimpleMemory, told it is
context- and graph-aware, with a kept count) because filling rdflib's default Memory store was
most of a SHACL worker's time. These tests check that pyshacl reports exactly the same results
over it as over the default store: on the real corpus and on a copy with thousands of planted
defects, for each partition, with the shapes the build uses."""

from __future__ import annotations

import pyshacl
import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDF, SH

from mg_rdf import validation
from test_validation_flatten import _plant_defects

KEYS = (SH.focusNode, SH.resultPath, SH.value, SH.sourceShape, SH.sourceConstraintComponent,
        SH.resultMessage, SH.resultSeverity)


def _results(data: Graph, types: tuple[str, ...]) -> set[tuple]:
    _, report, _ = pyshacl.validate(data, shacl_graph=validation._shapes_graph(types), inference="none",
                                    inplace=True, advanced=False, allow_warnings=True, allow_infos=True)
    return {tuple(report.value(r, k) for k in KEYS) for r in report.subjects(RDF.type, SH.ValidationResult)}


def _in(store_graph: Graph, triples) -> Graph:
    for t in triples:
        store_graph.add(t)
    return store_graph


def _fast(triples) -> Graph:
    return _in(Graph(store=validation._DataStore()), triples)


@pytest.fixture(scope="module")
def partitions(head_analysis, iris):
    index = head_analysis.index
    return [(types, validation._data_graph([e for e in head_analysis.entities if e.type in types], index, iris)[0])
            for types in validation.PARTITIONS]


@pytest.mark.parametrize("part", [0, 1])
def test_real_corpus_reports_the_same_as_over_rdflibs_default_store(partitions, part):
    types, data = partitions[part]
    assert isinstance(data.store, validation._DataStore)
    expected = _results(_in(Graph(), data), types)
    assert len(expected) > 1, "the real corpus has SHACL results: the comparison is not empty"
    assert _results(data, types) == expected


@pytest.mark.parametrize("part", [0, 1])
def test_planted_defects_are_reported_the_same(partitions, part):
    types, data = partitions[part]
    bad = _plant_defects(data, seed=10 + part)   # a default-store Graph
    expected = _results(bad, types)
    assert len(expected) > 1000
    assert _results(_fast(bad), types) == expected


def test_the_kept_count_follows_adds_and_removes():
    s, p = URIRef("urn:x:s"), URIRef("urn:x:p")
    g = _fast([(s, p, Literal(1)), (s, p, Literal(2)), (s, RDF.type, p)])
    assert len(g) == 3
    g.add((s, p, Literal(1)))   # already there
    assert len(g) == 3
    g.remove((s, p, None))
    assert len(g) == 1 and bool(g)
    g.remove((None, None, None))
    assert len(g) == 0 and not g
