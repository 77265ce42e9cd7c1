"""The mapper is a pure function: records in, triples and problems out."""

from __future__ import annotations

from pyoxigraph import Literal, NamedNode

from mg_rdf.mapping import MGX, map_entity
from mg_rdf.reader import EntityRecord
from mg_rdf.vocab import DataIris

MG = "https://w3id.org/movement-graph/ontology#"
XSD = "http://www.w3.org/2001/XMLSchema#"
IRIS = DataIris()


def record(data: dict, path: str = "entities/campaigns/camp-x.md", body: str = "# X\n") -> EntityRecord:
    lines = {k: i + 2 for i, k in enumerate(data)}
    return EntityRecord(path, "0" * 40, "", data, body, lines, len(data) + 3)


def camp(**fields) -> dict:
    return {"id": "camp-x", "type": "campaign", "name": "X", **fields}


def objects(m, prop: str, subject: str | None = None) -> list:
    s = NamedNode(subject) if subject else m.iri
    return [t.object for t in m.triples if t.subject == s and t.predicate == NamedNode(MG + prop)]


def test_dates_are_typed_by_their_precision():
    m = map_entity(record(camp(start_date="2021-06-07", end_date="2022-08", created=2023)), IRIS)
    assert objects(m, "startDate") == [Literal("2021-06-07", datatype=NamedNode(XSD + "date"))]
    assert objects(m, "endDate") == [Literal("2022-08", datatype=NamedNode(XSD + "gYearMonth"))]
    assert objects(m, "created") == [Literal("2023", datatype=NamedNode(XSD + "gYear"))]
    assert m.problems == []


def test_ongoing_is_not_a_date():
    m = map_entity(record(camp(end_date="ongoing")), IRIS)
    assert objects(m, "endDate") == []
    assert objects(m, "ongoing") == [Literal("true", datatype=NamedNode(XSD + "boolean"))]


def test_impossible_date_is_kept_as_text_and_reported_with_its_line():
    m = map_entity(record(camp(start_date="2021-02-30")), IRIS)
    assert objects(m, "startDate") == [Literal("2021-02-30")]
    [p] = m.problems
    assert p.field == "start_date" and p.line == 5 and "impossible date" in p.message


def test_valid_urls_become_iris_and_others_stay_text_with_a_warning():
    data = {"id": "org-x", "type": "organization", "name": "X", "website": "https://x.org/a?b=1",
            "sources": [{"url": "javascript:alert(1)", "last_checked": "2026-01-01", "note": "n"},
                        {"url": "https://ok.example/", "last_checked": "2026-01-01"}]}
    m = map_entity(record(data, "entities/organizations/org-x.md"), IRIS)
    assert objects(m, "website") == [NamedNode("https://x.org/a?b=1")]
    src1 = IRIS.part("org-x", "source-1")
    assert objects(m, "url", src1) == [Literal("javascript:alert(1)")]
    assert objects(m, "url", IRIS.part("org-x", "source-2")) == [NamedNode("https://ok.example/")]
    [p] = m.problems
    assert p.field == "sources[0].url" and p.rule == "bad-url"


def test_references_become_entity_iris_and_are_listed_for_the_build():
    m = map_entity(record(camp(lead_orgs=["org-a"], participating_orgs=["org-a", "org-b"])), IRIS)
    assert objects(m, "leadOrganization") == [NamedNode(IRIS.entity("org-a"))]
    assert [(r.field, r.target_id, r.prop) for r in m.references] == [
        ("lead_orgs[0]", "org-a", "leadOrganization"),
        ("participating_orgs[0]", "org-a", "participatingOrganization"),
        ("participating_orgs[1]", "org-b", "participatingOrganization")]


def test_a_reference_that_is_not_an_id_is_kept_as_text_and_reported():
    m = map_entity(record(camp(lead_orgs=["Some Org Inc."])), IRIS)
    assert objects(m, "leadOrganization") == [Literal("Some Org Inc.")]
    assert m.references == []
    assert m.problems[0].rule == "bad-reference"


def test_unknown_fields_are_kept_under_mgx_and_warned():
    m = map_entity(record(camp(colour="blue", ratings=[1, 2])), IRIS)
    assert [t.object for t in m.triples if t.predicate == NamedNode(MGX + "colour")] == [Literal("blue")]
    assert len([t for t in m.triples if t.predicate == NamedNode(MGX + "ratings")]) == 2
    assert {p.field for p in m.problems if p.rule == "unknown-field"} == {"colour", "ratings"}


def test_a_known_field_on_the_wrong_type_keeps_its_meaning_and_is_warned():
    m = map_entity(record(camp(participating_people=["person-a"])), IRIS)
    assert objects(m, "participatingPerson") == [NamedNode(IRIS.entity("person-a"))]
    assert [p.rule for p in m.problems] == ["unknown-field"]


def test_tags_may_be_bare_years_and_a_string_is_read_as_one_tag():
    m = map_entity(record(camp(tags=[2023, "AI"])), IRIS)
    assert objects(m, "tag") == [NamedNode(IRIS.tag("2023")), NamedNode(IRIS.tag("AI"))]
    m = map_entity(record(camp(tags="solo")), IRIS)
    assert objects(m, "tag") == [NamedNode(IRIS.tag("solo"))]
    assert m.problems[0].rule == "wrong-shape"


def test_publisher_is_an_entity_or_a_name():
    pub = {"id": "pub-x", "type": "publication", "name": "P"}
    m = map_entity(record({**pub, "publisher": "org-a"}, "entities/publications/pub-x.md"), IRIS)
    assert objects(m, "publisher") == [NamedNode(IRIS.entity("org-a"))]
    m = map_entity(record({**pub, "publisher": "MIT Press"}, "entities/publications/pub-x.md"), IRIS)
    assert objects(m, "publisherName") == [Literal("MIT Press")]


def test_affiliations_keep_role_and_period_with_dates_where_the_text_states_them():
    person = {"id": "person-x", "type": "person", "name": "P", "affiliations": [
        {"org": "org-a", "role": "director", "period": "2015-2019"},
        {"org": "org-b", "role": "advisor", "period": "~2010-"},
        {"org": "org-c", "role": "chair", "period": "2021-10-15 to 2025-09-12"}]}
    m = map_entity(record(person, "entities/persons/person-x.md"), IRIS)
    a1, a2, a3 = (IRIS.part("person-x", f"affiliation-{i}") for i in (1, 2, 3))
    assert objects(m, "organization", a1) == [NamedNode(IRIS.entity("org-a"))]
    assert objects(m, "startDate", a1) == [Literal("2015", datatype=NamedNode(XSD + "gYear"))]
    assert objects(m, "endDate", a1) == [Literal("2019", datatype=NamedNode(XSD + "gYear"))]
    assert objects(m, "period", a2) == [Literal("~2010-")] and objects(m, "startDate", a2) == []
    assert objects(m, "endDate", a3) == [Literal("2025-09-12", datatype=NamedNode(XSD + "date"))]
    assert sorted(o.value for o in objects(m, "affiliatedWith")) == [IRIS.entity(x) for x in ("org-a", "org-b", "org-c")]


def test_body_links_to_entities_are_mentions_and_other_paths_are_not():
    body = ("# X\n\nSee [EDRi](../organizations/org-edri.md), [spec](../../schema/spec.md), "
            "[web](https://edri.org/) and `[code](../organizations/org-code.md)`.\n\n"
            "A wrong folder: [AJL](../persons/org-ajl.md).\n")
    m = map_entity(record(camp(), body=body), IRIS)
    # the body starts on line 6 of this record (three fields): links on its lines 3 and 5
    assert [(r.target_id, r.line) for r in m.mentions] == [("org-edri", 8), ("org-ajl", 10)]
    assert [p.rule for p in m.problems] == ["link-wrong-directory"]
    assert objects(m, "body") == [Literal(body.strip("\n"))]


def test_the_name_differing_from_the_h1_is_warned():
    m = map_entity(record(camp(name="Access Now"), body="# Access Now #KeepItOn coalition\n"), IRIS)
    assert [p.rule for p in m.problems] == ["name-h1-mismatch"]


def test_missing_id_falls_back_to_the_file_name_and_is_reported():
    m = map_entity(record({"type": "campaign", "name": "X"}), IRIS)
    assert m.id == "camp-x" and m.problems[0].rule == "required"


def test_unknown_type_is_reported_and_not_mapped():
    m = map_entity(record({"id": "camp-x", "type": "movement", "name": "X"}), IRIS)
    assert m.triples == [] and m.problems[0].rule == "unknown-type"


def test_a_100k_character_name_is_kept():
    m = map_entity(record(camp(name="n" * 100_000)), IRIS)
    assert len(objects(m, "name")[0].value) == 100_000
