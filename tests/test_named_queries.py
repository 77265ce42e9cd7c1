"""Named queries: the header parser, value checking and binding, paging, and every shipped query
on the real corpus, with expectations computed from the corpus YAML (never from the query)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from pyoxigraph import Literal, NamedNode, Store

from mg_rdf import config, schema
from mg_rdf.named_queries import (MAX_LIMIT, AnswerCache, ParameterError, QueryFileError, bind_arguments, check_value,
                                  cli_run, load_queries, page_bounds, parse_query, prepared_text, records, run)
from mg_rdf.vocab import PREFIXES, DataIris

from conftest import HEAD_COMMIT

IRIS = DataIris()
ID = IRIS.base + "id/"

# -- the header parser ---------------------------------------------------------------------------

GOOD = """#+ title: Campaigns an organisation leads
#+ description: Every campaign that names it as a lead.
#+ paginate: true
#+ params:
#+   org:
#+     type: entity
#+     entity_type: organization
#+     required: true
#+     example: org-access-now
#+     description: The organisation.
#+ columns:
#+   campaign: {type: iri, description: The campaign.}
PREFIX mg: <https://w3id.org/movement-graph/ontology#>
# a comment with a brace { and the word WHERE
SELECT DISTINCT ?campaign WHERE {
  ?org mg:leadsCampaign ?campaign .
}
ORDER BY ?campaign
"""


def parse(text: str, name: str = "some-query") -> object:
    return parse_query(text, Path(f"queries/{name}.rq"))


def header_error(text: str) -> QueryFileError:
    with pytest.raises(QueryFileError) as e:
        parse(text)
    return e.value


def test_a_good_header_is_read_into_title_parameters_and_columns():
    q = parse(GOOD)
    assert (q.name, q.title, q.paginate) == ("some-query", "Campaigns an organisation leads", True)
    assert [(p.name, p.type, p.required, p.entity_types) for p in q.params] == [
        ("org", "entity", True, ("organization",))]
    assert [(c.name, c.type) for c in q.columns] == [("campaign", "iri")]
    assert q.text.startswith("PREFIX mg:") and "#+" not in q.text
    assert q.header_lines == 12
    # the VALUES block goes just after the WHERE group's brace, not the one in the comment
    assert q.text[q.values_at - 1] == "{" and q.text[:q.values_at].rstrip().endswith("WHERE {")


@pytest.mark.parametrize("change, line, words", [
    (("#+ paginate: true", "#+ paginate: [true"), 4, "flow sequence (line 3)"),
    (("#+     required: true", "#+    required: true"), 8, "not valid YAML"),
    (("#+ paginate: true", "#+ paginate: true\n#+ colour: red"), 4, "colour: unknown key"),
    (("#+     type: entity", "#+     type: entiti"), 6, "unknown type 'entiti'"),
    (("#+     entity_type: organization", "#+     entity_type: organisation"), 7, "unknown entity type"),
    (("#+     required: true", "#+     required: yes please"), 8, "expected true or false"),
    (("#+     example: org-access-now", "#+     example: acc\"ess"), 9, "params.org.example"),
    (("#+     example: org-access-now\n", ""), 5, "needs an example"),
    (("#+ title: Campaigns an organisation leads", "#+ title: A\n#+ title: B"), 2, "title is given twice"),
    (("#+   campaign: {type: iri, description: The campaign.}",
      "#+   campaign: {type: iri, description: The campaign, as an IRI}"), 12, "needs quotes"),
    (("#+   campaign: {type: iri, description: The campaign.}", "#+   other: {type: iri, description: x}"),
     11, "differ from what the query selects"),
    (("ORDER BY ?campaign", ""), 3, "paginated query has an ORDER BY"),
    (("ORDER BY ?campaign", "ORDER BY ?campaign LIMIT 5"), 3, "no LIMIT of its own"),
    (("?org mg:leadsCampaign", "?someone mg:leadsCampaign"), 5, "never uses ?org"),
    (("SELECT DISTINCT ?campaign WHERE {", "SELECT DISTINCT ?campaign WHERE { FILTER("), 16, "SPARQL syntax error"),
])
def test_a_malformed_header_names_the_file_and_the_line(change, line, words):
    e = header_error(GOOD.replace(*change))
    assert e.path.endswith("some-query.rq") and e.line == line, str(e)
    assert words in str(e) and str(e).startswith(f"{e.path}:{line}: ")


def test_a_file_without_a_header_or_with_a_bad_name_is_refused():
    assert "no header" in str(header_error(GOOD.replace("#+ ", "# ")))
    with pytest.raises(QueryFileError, match="lower-case words"):
        parse(GOOD, "Bad_Name")


def test_only_select_queries_and_real_parameter_names_are_accepted():
    ask = GOOD.replace("SELECT DISTINCT ?campaign WHERE {", "ASK {").replace("ORDER BY ?campaign", "LIMIT 1")
    ask = ask.replace("#+ paginate: true", "#+ paginate: false")
    assert "a named query is a SELECT" in str(header_error(ask))
    for bad in ("limit", "Org", "o-rg"):
        e = header_error(GOOD.replace("#+   org:", f"#+   {bad}:").replace("?org", f"?{bad}"))
        assert e.line == 5 and "parameter name" in str(e)


def test_an_enum_needs_values_and_a_default_must_pass_its_own_type():
    e = header_error(GOOD.replace("#+     type: entity\n#+     entity_type: organization\n", "#+     type: enum\n"))
    assert "values" in str(e)
    text = GOOD.replace("#+ columns:", "#+   n:\n#+     type: integer\n#+     default: many\n"
                        "#+     description: x\n#+ columns:").replace("?org mg:", "?org mg:x ?n . ?org mg:")
    e = header_error(text)
    assert e.line == 13 and "params.n.default" in str(e) and "whole number" in str(e)


def test_the_shipped_folder_loads_and_holds_at_least_fifteen_queries():
    queries = load_queries(config.QUERIES_DIR)
    assert len(queries) >= 15
    assert {q.name for q in queries} == {p.stem for p in config.QUERIES_DIR.glob("*.rq")}
    for q in queries:
        Store().query(q.text)   # parses with no prefixes given: it declares its own, so it runs in any tool


# -- checking and binding values -----------------------------------------------------------------

def param(type_: str, **kw):
    from mg_rdf.named_queries import Parameter
    return Parameter("x", type_, "a parameter", **kw)


@pytest.mark.parametrize("p, raw, term", [
    (param("entity"), "org-access-now", NamedNode(ID + "org-access-now")),
    (param("entity"), ID + "camp-x-2021", NamedNode(ID + "camp-x-2021")),
    (param("entity", entity_types=("person", "voice")), "voice-apar-gupta", NamedNode(ID + "voice-apar-gupta")),
    (param("tag"), "Facial Recognition", NamedNode(IRIS.base + "tag/facial-recognition")),
    (param("tag"), IRIS.base + "tag/facial-recognition", NamedNode(IRIS.base + "tag/facial-recognition")),
    (param("string"), 'a "quoted" }\nUNION {', Literal('a "quoted" }\nUNION {')),
    (param("integer", minimum=0, maximum=10), "7", Literal("7", datatype=NamedNode(PREFIXES["xsd"] + "integer"))),
    (param("date"), "2021-06", Literal("2021-06", datatype=NamedNode(PREFIXES["xsd"] + "gYearMonth"))),
    (param("date"), "2021-06-07", Literal("2021-06-07", datatype=NamedNode(PREFIXES["xsd"] + "date"))),
    (param("enum", values=("lead", "participant")), "lead", Literal("lead")),
])
def test_values_become_rdf_terms_of_their_declared_type(p, raw, term):
    assert check_value(p, raw, IRIS) == term


@pytest.mark.parametrize("p, raw, words", [
    (param("entity"), "org access now", "expected an entity id"),
    (param("entity"), "org-a> } UNION { ?s ?p ?o", "expected an entity id"),
    (param("entity"), ID + "org-a b", "expected an entity id"),
    (param("entity"), "https://example.org/id/org-a", "expected an entity id"),
    (param("entity"), "thing-a", "expected an entity id"),
    (param("entity"), "org-access-now\n", "expected an entity id"),
    (param("integer"), "5\n", "whole number"),
    (param("integer"), "٥", "whole number"),
    (param("date"), "2021-06-01\n", "expected a date"),
    (param("entity", entity_types=("organization",)), "camp-x", "of type organization"),
    (param("tag"), "", "expected a tag"),
    (param("tag"), "x" * 201, "expected a tag"),
    (param("string", max_length=5), "toolong", "longer than 5"),
    (param("integer"), "5 } UNION {", "whole number"),
    (param("integer"), "1.5", "whole number"),
    (param("integer", minimum=1, maximum=3), "4", "between 1 and 3"),
    (param("date"), "2021-13-01", "expected a date"),
    (param("date"), "2021-02-30", "expected a date"),
    (param("date"), '2021"^^<x> } UNION {', "expected a date"),
    (param("enum", values=("lead",)), "Lead", "one of: lead"),
])
def test_malformed_values_are_refused_naming_the_parameter(p, raw, words):
    with pytest.raises(ParameterError) as e:
        check_value(p, raw, IRIS)
    assert e.value.parameter == "x" and words in str(e.value)


def test_arguments_are_checked_defaults_fill_in_and_unknown_names_are_refused():
    q = next(q for q in load_queries(config.QUERIES_DIR) if q.name == "co-participation")
    assert bind_arguments(q, {}, IRIS) == {"min_shared": Literal("1", datatype=NamedNode(PREFIXES["xsd"] + "integer"))}
    assert set(bind_arguments(q, {"org": "org-access-now", "min_shared": "2"}, IRIS)) == {"org", "min_shared"}
    assert set(bind_arguments(q, {"org": ""}, IRIS)) == {"min_shared"}, "an empty value counts as absent"
    with pytest.raises(ParameterError, match="not a parameter") as e:
        bind_arguments(q, {"organisation": "org-access-now"}, IRIS)
    assert e.value.parameter == "organisation" and e.value.code == "unknown-parameter"
    with pytest.raises(ParameterError, match="no entity") as e:
        bind_arguments(q, {"org": "org-nobody"}, IRIS, exists=lambda i: False)
    assert e.value.code == "unknown-entity"
    required = next(q for q in load_queries(config.QUERIES_DIR) if q.name == "campaigns-of-organisation")
    with pytest.raises(ParameterError, match="required") as e:
        bind_arguments(required, {}, IRIS)
    assert e.value.parameter == "org"


def test_page_bounds_default_and_cap():
    assert page_bounds(None, None) == (100, 0)
    assert page_bounds("1000", "5") == (MAX_LIMIT, 5)
    for raw_limit, raw_offset, name in (("1001", None, "limit"), ("0", None, "limit"), ("-1", None, "limit"),
                                        ("ten", None, "limit"), (None, "-5", "offset"), (None, "1e3", "offset")):
        with pytest.raises(ParameterError) as e:
            page_bounds(raw_limit, raw_offset)
        assert e.value.parameter == name


NASTY = ['"', "'", '"""', "\\", "}", "{", "} UNION { ?s ?p ?o }", "x\" } UNION { ?s ?p ?o } #", "line\nbreak",
         "a\r\nb", "# comment", "<http://example.org/x>", "?org", "$org", ")", "VALUES", "\u0000", "é ü 漢字",
         "x" * 5000]


def test_a_bound_value_is_one_token_that_reads_back_as_itself():
    """Whatever the text, the VALUES block parses back to exactly the term that was bound."""
    q = parse(GOOD)
    for raw in NASTY:
        term = Literal(raw)
        text = prepared_text(q, {"org": term})
        before, after = q.text[:q.values_at], q.text[q.values_at:]
        assert text.startswith(before) and text.endswith(after), "nothing of the query but the block changes"
        block = text[len(before):len(text) - len(after)]
        rows = list(Store().query(f"SELECT * WHERE {{ {block} }}"))
        assert len(rows) == 1 and rows[0]["org"] == term, repr(raw)


# -- real corpus: reading the YAML the queries are built from -----------------------------------

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.S)


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> dict[str, dict]:
    """id -> frontmatter (plus _body, _dir, _text) of every entity file that parses."""
    out = {}
    for path in sorted((corpus_dir / "entities").glob("*/*.md")):
        text = path.read_text(encoding="utf-8")
        m = _FRONT.match(text)
        try:
            data = yaml.load(m.group(1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if m else None
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            out[data["id"]] = {**data, "_body": m.group(2), "_dir": path.parent.name, "_text": text,
                               "_path": path}
    return out


def refs(value) -> list[str]:
    if value is None or value == "":
        return []
    return [v.strip() for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def of_type(corpus, directory):
    return {i: e for i, e in corpus.items() if e["_dir"] == directory}


def date_text(value) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def ask(store, name: str, **args) -> list[dict]:
    """Every row of a named query (all pages), checked against the query's own total."""
    q = next(q for q in load_queries(config.QUERIES_DIR) if q.name == name)
    answer = run(store, q, bind_arguments(q, {k: str(v) for k, v in args.items()}, IRIS), MAX_LIMIT, 0)
    rows = records(answer)
    if q.paginate:
        assert answer.total == len(rows) and not answer.has_next, "more than one page: raise the test's limit"
    # a link stated on both sides lives in two graphs of the union: no row may come back twice
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows), f"{name}: a row is repeated"
    return rows


COVERED: set[str] = set()


def covers(name: str):
    COVERED.add(name)
    return lambda f: f


def test_every_shipped_query_has_a_real_corpus_test():
    names = {q.name for q in load_queries(config.QUERIES_DIR)}
    # the queries over audits are tested on the real corpus in test_audits.py, against its audit files
    audit_tests = (Path(__file__).parent / "test_audits.py").read_text()
    audit = {n for n in names if n.startswith("audit-") and f'"{n}"' in audit_tests}
    assert COVERED | audit == names


@covers("campaigns-of-organisation")
def test_campaigns_an_organisation_leads_or_joins(head_store, corpus):
    for org in ("org-access-now", "org-edri", "org-foxglove"):
        expected = {(c, "lead") for c, e in of_type(corpus, "campaigns").items() if org in refs(e.get("lead_orgs"))}
        expected |= {(c, "participant") for c, e in of_type(corpus, "campaigns").items()
                     if org in refs(e.get("participating_orgs"))}
        rows = ask(head_store, "campaigns-of-organisation", org=org)
        assert {(r["campaign_id"], r["role"]) for r in rows} == expected and expected, org
        assert all(r["campaign"] == ID + r["campaign_id"] for r in rows)
        starts = [r["start"] or "" for r in rows]
        assert starts == sorted(starts, reverse=True), "newest start first"
        leads = ask(head_store, "campaigns-of-organisation", org=org, role="lead")
        assert {(r["campaign_id"], r["role"]) for r in leads} == {x for x in expected if x[1] == "lead"}
    keep = next(r for r in ask(head_store, "campaigns-of-organisation", org="org-access-now")
                if r["campaign_id"] == "camp-access-now-keep-it-on-internet-shutdowns-2016-ongoing")
    yaml_camp = corpus[keep["campaign_id"]]
    assert keep["ongoing"] is (str(yaml_camp.get("end_date")) == "ongoing")
    assert keep["start"] == date_text(yaml_camp["start_date"])


@covers("funders-of-campaign")
def test_funders_behind_the_organisations_of_a_campaign(head_store, corpus):
    funders = of_type(corpus, "funders")
    for camp in ("camp-edri-reclaim-your-face-eu-citizens-initiative-2020-2022",
                 "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"):
        c = corpus[camp]
        roles = [(o, "lead") for o in refs(c.get("lead_orgs"))] + [(o, "participant") for o in
                                                                 refs(c.get("participating_orgs"))]
        expected = set()
        for org, role in roles:
            if org not in corpus:
                continue
            backers = set(refs(corpus[org].get("funders"))) | {f for f, e in funders.items()
                                                               if org in refs(e.get("funded_orgs"))}
            expected |= {(f, org, role) for f in backers if f in corpus}
        rows = ask(head_store, "funders-of-campaign", campaign=camp)
        assert {(r["funder_id"], r["org_id"], r["org_role"]) for r in rows} == expected and expected, camp
        assert all(r["funder_type"] == funders[r["funder_id"]].get("funder_type") for r in rows)


@covers("people-of-organisation")
def test_people_affiliated_with_an_organisation(head_store, corpus):
    persons = of_type(corpus, "persons")

    def affiliations(org):
        return [(pid, a.get("role"), a.get("period")) for pid, p in persons.items()
                for a in (p.get("affiliations") or []) if isinstance(a, dict) and a.get("org") == org]

    for org in ("org-pauseai", "org-human-rights-watch"):
        expected = {(pid, role) for pid, role, _ in affiliations(org)}
        rows = ask(head_store, "people-of-organisation", org=org)
        assert {(r["person_id"], r["role"]) for r in rows} == expected and expected, org
        key_people = set(refs(corpus[org].get("key_people")))
        assert {r["person_id"] for r in rows if r["key_person"]} == key_people & {p for p, _ in expected}
    # on 2024-06-01, PauseAI's affiliations that had started ("2023-", "2024-"; not "2025-", not undated)
    expected = {pid for pid, _, period in affiliations("org-pauseai")
                if period and re.match(r"^(\d{4})-$", str(period)) and int(str(period)[:4]) <= 2024}
    rows = ask(head_store, "people-of-organisation", org="org-pauseai", active_on="2024-06-01")
    assert {r["person_id"] for r in rows} == expected and len(expected) >= 5


@covers("message-propagation")
def test_messages_and_who_propagates_them(head_store, corpus):
    messages = of_type(corpus, "messages")
    expected = {(m, o) for m, e in messages.items() for o in refs(e.get("propagated_by_orgs")) if o in corpus}
    rows = ask(head_store, "message-propagation")
    assert {(r["message_id"], r["org_id"]) for r in rows} == expected
    keepiton = [r for r in rows if r["message_id"] == "msg-keepiton"]
    assert {r["originator"] for r in keepiton} == {ID + x for x in refs(messages["msg-keepiton"].get(
        "originating_org")) + refs(messages["msg-keepiton"].get("originating_person"))}
    by_org = ask(head_store, "message-propagation", org="org-access-now")
    assert {r["message_id"] for r in by_org} == {m for m, o in expected if o == "org-access-now"}
    one = ask(head_store, "message-propagation", message="msg-keepiton", org="org-access-now")
    assert [(r["message_id"], r["org_id"]) for r in one] == [("msg-keepiton", "org-access-now")]


@covers("campaign-events")
def test_a_campaigns_events_in_time_order(head_store, corpus):
    events = of_type(corpus, "events")
    for camp in ("camp-pauseai-international-protests-2023-ongoing", "camp-foxglove-gmcdp-dwp-2021-ongoing"):
        expected = {e for e in refs(corpus[camp].get("events")) if e in events}
        expected |= {e for e, v in events.items() if v.get("campaign") == camp}
        rows = ask(head_store, "campaign-events", campaign=camp)
        assert [r["event_id"] for r in rows] == sorted(expected, key=lambda e: (date_text(events[e].get("date")), e))
        assert all(r["date"] == date_text(events[r["event_id"]]["date"]) for r in rows)


@covers("strategies-ranked")
def test_strategies_ranked_by_adopters(head_store, corpus):
    orgs, camps = Counter(), Counter()
    for e in of_type(corpus, "organizations").values():
        orgs.update(set(refs(e.get("strategies"))))
    for e in of_type(corpus, "campaigns").values():
        camps.update(set(refs(e.get("strategies"))))
    rows = ask(head_store, "strategies-ranked")
    assert {r["strategy_id"] for r in rows} == set(of_type(corpus, "strategies"))
    for r in rows:
        assert (r["organisations"], r["campaigns"]) == (orgs[r["strategy_id"]], camps[r["strategy_id"]]), r
        assert r["adopters"] == r["organisations"] + r["campaigns"]
    assert [r["adopters"] for r in rows] == sorted((r["adopters"] for r in rows), reverse=True)
    at_least = ask(head_store, "strategies-ranked", min_adopters=10)
    assert [r["strategy_id"] for r in at_least] == [r["strategy_id"] for r in rows if r["adopters"] >= 10]


@covers("organisations-without-funder")
def test_organisations_with_no_recorded_funder(head_store, corpus):
    funded = {o for e in of_type(corpus, "funders").values() for o in refs(e.get("funded_orgs"))}
    orgs = of_type(corpus, "organizations")
    expected = {o for o, e in orgs.items() if not refs(e.get("funders")) and o not in funded}
    rows = ask(head_store, "organisations-without-funder")
    assert {r["org_id"] for r in rows} == expected and expected
    active = ask(head_store, "organisations-without-funder", status="historical")
    assert {r["org_id"] for r in active} == {o for o in expected if orgs[o].get("status") == "historical"}


@covers("entities-by-tag")
def test_entities_by_tag(head_store, corpus):
    def norm(tag) -> str:
        return re.sub(r"[^a-z0-9]+", "-", str(tag).lower()).strip("-")

    for tag in ("facial-recognition", "digital-rights", "Facial Recognition"):
        expected = {i for i, e in corpus.items() if any(norm(t) == norm(tag) for t in (e.get("tags") or []))}
        rows = ask(head_store, "entities-by-tag", tag=tag)
        assert {r["entity_id"] for r in rows} == expected and expected, tag
    camps = ask(head_store, "entities-by-tag", tag="facial-recognition", type="campaign")
    assert camps and all(r["entity_id"].startswith("camp-") and r["type"] == "campaign" for r in camps)
    assert ask(head_store, "entities-by-tag", tag="no-such-tag-anywhere") == []


def neighbours(corpus) -> dict[str, set[str]]:
    """Entities linked by frontmatter references, both ways (the schema says which fields refer)."""
    out: dict[str, set[str]] = defaultdict(set)
    for i, e in corpus.items():
        etype = schema.TYPES.get(e.get("type"))
        if etype is None:
            continue
        targets = []
        for name, value in e.items():
            # a field the type does not declare is read as on the type that does (the build's rule)
            f = etype.fields.get(name) or schema.any_field_named(name)
            if f is not None and f.kind in schema.REFERENCE_KINDS:
                targets += [t for t in refs(value) if schema.type_of_id(t)]
        for a in e.get("affiliations") or []:
            if isinstance(a, dict):
                targets += refs(a.get("org"))
        for t in targets:
            if t in corpus and t != i:
                out[i].add(t)
                out[t].add(i)
    return out


@covers("most-connected")
def test_most_connected_entities(head_store, corpus):
    degree = {i: len(n) for i, n in neighbours(corpus).items()}
    rows = ask(head_store, "most-connected")
    assert {r["entity_id"]: r["connections"] for r in rows} == degree
    assert rows[0]["connections"] == max(degree.values())
    funders = ask(head_store, "most-connected", type="funder")
    assert [r["entity_id"] for r in funders] == [r["entity_id"] for r in rows if r["type"] == "funder"]


@covers("mentions-of-entity")
def test_entities_that_mention_an_entity(head_store, corpus):
    for target in ("org-foxglove", "person-joy-buolamwini"):
        link = re.compile(r"\]\((?:[^)\s]*/)?" + re.escape(target) + r"\.md\)")
        in_body = {i for i, e in corpus.items() if i != target and link.search(e["_body"])}
        anywhere = {i for i, e in corpus.items() if i != target and target in e["_text"]}
        found = {r["mentioned_by_id"] for r in ask(head_store, "mentions-of-entity", entity=target)}
        assert in_body <= found <= anywhere and in_body, target


@covers("co-participation")
def test_organisations_that_appear_together_in_campaigns(head_store, corpus):
    members = {c: set(refs(e.get("lead_orgs"))) | set(refs(e.get("participating_orgs")))
               for c, e in of_type(corpus, "campaigns").items()}
    members = {c: {o for o in m if o in corpus} for c, m in members.items()}
    partners = Counter(p for m in members.values() if "org-access-now" in m for p in m if p != "org-access-now")
    rows = ask(head_store, "co-participation", org="org-access-now")
    assert {r["partner"][len(ID):]: r["shared_campaigns"] for r in rows} == dict(partners)
    assert {r["organisation"] for r in rows} == {ID + "org-access-now"}
    pairs = Counter(tuple(sorted((a, b))) for m in members.values() for a in m for b in m if a < b)
    all_rows = ask(head_store, "co-participation", min_shared=2)
    assert {(r["organisation"][len(ID):], r["partner"][len(ID):]): r["shared_campaigns"] for r in all_rows} == {
        p: n for p, n in pairs.items() if n >= 2}


@covers("events-in-period")
def test_events_in_a_period(head_store, corpus):
    events = of_type(corpus, "events")
    in_2021 = {e for e, v in events.items() if date_text(v.get("date")).startswith("2021")}
    rows = ask(head_store, "events-in-period", **{"from": "2021-01-01", "to": "2021-12-31"})
    assert {r["event_id"] for r in rows} == in_2021 and in_2021
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    protests = {e for e, v in events.items() if "protest" in str(v.get("event_type") or "").lower()}
    assert {r["event_id"] for r in ask(head_store, "events-in-period", kind="PROTEST")} == protests and protests
    assert {r["event_id"] for r in ask(head_store, "events-in-period", to="2015")} == {
        e for e, v in events.items() if date_text(v.get("date"))[:4] <= "2015"}


@covers("search-entities")
def test_entities_whose_name_contains_a_text(head_store, corpus):
    for text in ("surveillance", "Foxglove", "pause"):
        expected = {i for i, e in corpus.items() if text.lower() in str(e.get("name")).lower() or text.lower() in i}
        rows = ask(head_store, "search-entities", text=text)
        assert {r["entity_id"] for r in rows} == expected and expected, text
    orgs = ask(head_store, "search-entities", text="foundation", type="organization")
    assert orgs and all(r["entity_id"].startswith("org-") for r in orgs)


@covers("local-groups-of-organisation")
def test_local_groups_of_an_organisation(head_store, corpus):
    groups = of_type(corpus, "local-groups")
    for org in ("org-pauseai", "org-encode-justice"):
        expected = {g for g, e in groups.items() if e.get("parent_org") == org}
        rows = ask(head_store, "local-groups-of-organisation", org=org)
        assert {r["group_id"] for r in rows} == expected and expected, org
        assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)


@covers("publications-of-author")
def test_publications_by_an_author(head_store, corpus):
    pubs = of_type(corpus, "publications")
    for person in ("person-joy-buolamwini", "person-kate-crawford", "person-timnit-gebru"):
        same = {person} | set(refs(corpus[person].get("voice_entry")))
        expected = {p for p, e in pubs.items() if same & set(refs(e.get("authors")))}
        rows = ask(head_store, "publications-of-author", author=person)
        assert {r["publication_id"] for r in rows} == expected and expected, person
        for voice in refs(corpus[person].get("voice_entry")):
            assert {r["publication_id"] for r in ask(head_store, "publications-of-author", author=voice)} == expected


@covers("funders-by-type")
def test_funders_and_how_many_organisations_they_fund(head_store, corpus):
    orgs = of_type(corpus, "organizations")
    funders = of_type(corpus, "funders")
    expected = {f: len({o for o in refs(e.get("funded_orgs")) if o in orgs}
                       | {o for o, v in orgs.items() if f in refs(v.get("funders"))}) for f, e in funders.items()}
    rows = ask(head_store, "funders-by-type")
    assert {r["funder_id"]: r["organisations"] for r in rows} == expected
    grants = ask(head_store, "funders-by-type", funder_type="grant-program")
    assert {r["funder_id"] for r in grants} == {f for f, e in funders.items()
                                                if e.get("funder_type") == "grant-program"}


@covers("strategy-effects")
def test_recorded_effects_of_strategies(head_store, corpus):
    effects = [(s, e) for s, v in of_type(corpus, "strategies").items() for e in (v.get("effects") or [])]
    rows = ask(head_store, "strategy-effects")
    assert len(rows) == len(effects)
    assert Counter(r["strategy"][len(ID):] for r in rows) == Counter(s for s, _ in effects)
    judicial = ask(head_store, "strategy-effects", effect_type="judicial-outcome", confidence="high")
    assert len(judicial) == sum(1 for _, e in effects if e.get("type") == "judicial-outcome"
                                and e.get("attribution_confidence") == "high")
    strat = "strat-strategic-litigation-against-algorithmic-state-decisions"
    mine = ask(head_store, "strategy-effects", strategy=strat)
    assert sorted(r["description"] for r in mine) == sorted(str(e.get("description")).strip() for s, e in effects
                                                            if s == strat)


def _period(value, end: bool) -> tuple[dt.date, dt.date]:
    """A corpus date (YYYY, YYYY-MM, YYYY-MM-DD) as the first and last day it covers."""
    text = date_text(value)
    parts = [int(x) for x in text.split("-")]
    first = dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    if len(parts) == 3:
        return first, first
    if len(parts) == 2:
        following = dt.date(parts[0] + (parts[1] == 12), parts[1] % 12 + 1, 1)
        return first, following - dt.timedelta(days=1)
    return first, dt.date(parts[0], 12, 31)


@covers("campaigns-active-on")
def test_campaigns_running_on_a_date(head_store, corpus):
    day = dt.date(2021, 6, 1)
    expected = set()
    for c, e in of_type(corpus, "campaigns").items():
        if not e.get("start_date"):
            continue
        started = _period(e["start_date"], False)[0] <= day
        end = e.get("end_date")
        running = str(end) == "ongoing" or (bool(end) and _period(end, True)[1] >= day)
        if started and running:
            expected.add(c)
    rows = ask(head_store, "campaigns-active-on", date="2021-06-01")
    assert {r["campaign_id"] for r in rows} == expected and expected


@covers("sources-to-recheck")
def test_entities_with_sources_checked_before_a_date(head_store, corpus):
    limit = dt.date(2026, 5, 14)
    stale = {}
    for i, e in corpus.items():
        dates = [s["last_checked"] for s in (e.get("sources") or []) if isinstance(s, dict)
                 and isinstance(s.get("last_checked"), dt.date) and s["last_checked"] < limit]
        if dates:
            stale[i] = (len(dates), min(dates).isoformat())
    rows = ask(head_store, "sources-to-recheck", before="2026-05-14")
    assert {r["entity_id"]: (r["stale_sources"], r["oldest_check"]) for r in rows} == stale and stale
    people = ask(head_store, "sources-to-recheck", before="2026-05-14", type="person")
    assert {r["entity_id"] for r in people} == {i for i in stale if i.startswith("person-")}


@covers("entity-provenance")
def test_where_an_entity_comes_from(head_store, corpus):
    for entity in ("org-access-now", "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"):
        path: Path = corpus[entity]["_path"]
        data = path.read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        [row] = ask(head_store, "entity-provenance", entity=entity)
        assert row["path"] == f"entities/{path.parent.name}/{path.name}"
        assert (row["blob"], row["commit"]) == (blob, HEAD_COMMIT)
        assert row["file_url"].endswith(row["path"]) and HEAD_COMMIT in row["file_url"]
        assert row["last_updated"] == date_text(corpus[entity]["last_updated"])


@covers("entity-counts")
def test_how_many_entities_of_each_type(head_store, corpus):
    by_dir = Counter(e["_dir"] for e in corpus.values())
    rows = ask(head_store, "entity-counts")
    assert {schema.TYPES[r["type"]].directory: r["entities"] for r in rows} == dict(by_dir)
    active = Counter(e["_dir"] for e in corpus.values() if e.get("status") == "active")
    rows = ask(head_store, "entity-counts", status="active")
    assert {schema.TYPES[r["type"]].directory: r["entities"] for r in rows} == dict(active)


# -- every query: examples, speed, declared columns ------------------------------------------------

def test_every_example_names_an_entity_of_the_corpus(corpus):
    for q in load_queries(config.QUERIES_DIR):
        for p in q.params:
            if p.type == "entity" and p.example:
                assert p.example in corpus, f"{q.name}: example {p.example} is not in the corpus"


def test_every_query_answers_its_example_with_rows_of_its_declared_types(head_store):
    # (their speed is measured by benchmarks/named_queries_bench.py, not asserted here)
    kinds = {"iri": str, "string": str, "date": str, "integer": int, "number": (int, float), "boolean": bool}
    for q in load_queries(config.QUERIES_DIR):
        answer = run(head_store, q, bind_arguments(q, q.example_arguments(), IRIS))
        assert answer.rows, f"{q.name}: its example answers nothing"
        for row in records(answer):
            for c in q.columns:
                value = row[c.name]
                assert (value is None and c.nullable) or (isinstance(value, kinds[c.type]) and not (
                    c.type == "integer" and isinstance(value, bool))), f"{q.name}.{c.name} = {value!r}"


# -- injection: hostile values in every parameter type ----------------------------------------------

HOSTILE = NASTY + ["org-access-now\" } UNION { ?s ?p ?o } #", "org-access-now>", "org-access-now }",
                   ID + "org-access-now> } UNION { ?s ?p ?o", ID + "org access now", "org-access-now\n",
                   "2021-06-01\"^^<http://www.w3.org/2001/XMLSchema#date> } #", "5 } UNION { ?s ?p ?o }",
                   "lead\" } UNION {", "1; DROP ALL"]


def test_hostile_values_are_refused_or_answered_as_plain_values(head_store):
    """Every parameter of every query, every hostile value: a 400 (ParameterError), or an
    answer that is empty or the same as for the harmless equivalent value."""
    outcomes = Counter()
    for q in load_queries(config.QUERIES_DIR):
        base = q.example_arguments()
        for p in q.params:
            for raw in HOSTILE:
                args = {**base, p.name: raw}
                try:
                    bound = bind_arguments(q, args, IRIS)
                except ParameterError as e:
                    assert e.parameter == p.name
                    outcomes["refused"] += 1
                    continue
                answer = records(run(head_store, q, bound, MAX_LIMIT))
                if p.type == "tag":   # a tag is made a slug, as the build does: same slug, same answer
                    same = records(run(head_store, q, bind_arguments(q, {**base, p.name: IRIS.tag(raw)}, IRIS),
                                       MAX_LIMIT))
                    assert answer == same, (q.name, p.name, raw)
                elif p.type == "string":
                    # text is searched for as text: only rows that really hold it can come back
                    assert all(raw.lower() in " ".join(str(v) for v in r.values()).lower() for r in answer), \
                        (q.name, p.name, raw)
                else:
                    pytest.fail(f"{q.name}: {p.type} parameter {p.name} accepted {raw!r}")
                outcomes["answered"] += 1
    assert outcomes["refused"] > 50 and outcomes["answered"] > 20, outcomes


def test_an_entity_given_as_its_iri_answers_like_its_id(head_store):
    assert ask(head_store, "campaigns-of-organisation", org=ID + "org-access-now") == \
        ask(head_store, "campaigns-of-organisation", org="org-access-now")


# -- pagination ------------------------------------------------------------------------------------

def test_pages_cover_the_answer_once_and_next_exists_only_before_the_last_page(head_store):
    q = next(q for q in load_queries(config.QUERIES_DIR) if q.name == "most-connected")
    everything = records(run(head_store, q, {}, MAX_LIMIT))
    total = len(everything)
    seen = []
    offset = 0
    while True:
        page = run(head_store, q, {}, 100, offset)
        assert page.total == total and len(page.rows) == min(100, total - offset)
        seen += records(page)
        assert page.has_next is (offset + 100 < total)
        if not page.has_next:
            break
        offset += 100
    assert seen == everything and total > 300
    exact = run(head_store, q, {}, total, 0)
    assert not exact.has_next and len(exact.rows) == total, "a page that ends at the last row has no next"
    past = run(head_store, q, {}, 100, total + 50)
    assert past.rows == [] and past.total == total and not past.has_next


def test_a_cached_answer_pages_like_a_fresh_one_and_is_kept_per_build(head_store):
    q = next(q for q in load_queries(config.QUERIES_DIR) if q.name == "most-connected")
    cache = AnswerCache(size=2)
    for offset in (0, 100, 700, 5000):
        fresh = run(head_store, q, {}, 100, offset)
        first = run(head_store, q, {}, 100, offset, cache, "build-1")
        again = run(head_store, q, {}, 100, offset, cache, "build-1")
        for a in (first, again):
            assert (a.rows, a.total, a.has_next) == (fresh.rows, fresh.total, fresh.has_next)
    assert len(cache._answers) == 1
    bound = bind_arguments(q, {"type": "funder"}, IRIS)
    funders = run(head_store, q, bound, 100, 0, cache, "build-1")
    assert {r["type"] for r in records(funders)} == {"funder"}, "other arguments, another answer"
    run(head_store, q, {}, 100, 0, cache, "build-2")
    kept = [(build, bool(args)) for build, _, _, args in cache._answers]
    assert kept == [("build-1", True), ("build-2", False)], "a new build's answer is kept apart; the oldest goes"


# -- the command line -------------------------------------------------------------------------------

def test_the_cli_runs_a_named_query_with_the_same_checks(head_store):
    out, note = cli_run(head_store, config.QUERIES_DIR, "campaigns-of-organisation", ["org=org-access-now"], "csv",
                        IRIS, limit=3)
    lines = out.decode().splitlines()
    assert lines[0] == "campaign,campaign_id,name,role,start,end,ongoing" and len(lines) == 4
    assert note.startswith("rows 1–3 of ") and "--offset 3" in note
    table, _ = cli_run(head_store, config.QUERIES_DIR, "entity-counts", [], "table", IRIS)
    assert "organization" in table.decode() and "(10 rows)" in table.decode()
    for params, name in ((["org=org-nobody"], "org"), (["org"], "org"), (["colour=red"], "colour"), ([], "org")):
        with pytest.raises(ParameterError) as e:
            cli_run(head_store, config.QUERIES_DIR, "campaigns-of-organisation", params, "csv", IRIS)
        assert e.value.parameter == name
