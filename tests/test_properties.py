"""Property-based tests of the reader and the mapper (Hypothesis).

Arbitrary files never make them raise; whatever is accepted maps to RDF that
serialises and parses back to the same graph.
"""

from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyoxigraph import RdfFormat, parse, serialize

from mg_rdf import schema
from mg_rdf.mapping import map_entity
from mg_rdf.reader import read_entity
from mg_rdf.source import SourceFile, blob_hash
from mg_rdf.vocab import DataIris

IRIS = DataIris()
FIELD_NAMES = sorted({f for t in schema.TYPES.values() for f in t.fields} | {"org", "url", "note", "extra"})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["2021-06-07", "2021-02-30", "2021-13", "2021", "ongoing", "org-a", "lg-b", "person-c",
                     "https://example.org/x", "javascript:alert(1)", "file:///etc/passwd", "active",
                     "high", "report", "earned-media", "../x", "a #b", "é ü 漢字"]))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4)), max_leaves=12)
frontmatter = st.fixed_dictionaries(
    {}, optional={"id": st.one_of(st.sampled_from(["org-a", "camp-b", "../../x", "a b", "é"]), values),
                  "type": st.one_of(st.sampled_from(sorted(schema.TYPES)), values),
                  "name": values}
).flatmap(lambda base: st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=8).map(
    lambda extra: {**extra, **base}))


def roundtrip(triples) -> None:
    data = serialize(triples, format=RdfFormat.N_TRIPLES)
    back = {q.triple for q in parse(data, format=RdfFormat.N_TRIPLES)}
    assert back == set(triples)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frontmatter, st.text(max_size=200))
def test_any_frontmatter_maps_to_rdf_that_parses_back(data, body):
    text = "---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n" + body
    raw = text.encode()
    result = read_entity(SourceFile("entities/organizations/org-a.md", raw, blob_hash(raw)))
    if result.record is None:
        assert result.problems and all(p.path == "entities/organizations/org-a.md" for p in result.problems)
        return
    m = map_entity(result.record, IRIS)
    roundtrip(m.triples)
    for p in m.problems:
        assert p.path == "entities/organizations/org-a.md" and p.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet=string.printable + "#&*!|>%@`\x00é", max_size=300).map(
    lambda t: ("---\n" + t + "\n---\n").encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_never_raise(raw):
    result = read_entity(SourceFile("entities/events/event-x.md", raw, blob_hash(raw)))
    if result.record is not None:
        roundtrip(map_entity(result.record, IRIS).triples)
    else:
        assert result.problems
