"""The real corpus at HEAD and at v1.0.0, checked against an independent reading.

Expectations here come from reading the YAML and Markdown inside the test
(PyYAML's safe_load, markdown-it-py, a field table written out below), never
from mg-rdf's own reader or mapper, and are compared with what the built store
answers over SPARQL.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import pytest
import yaml
from markdown_it import MarkdownIt

from conftest import HEAD_COMMIT, V1_COMMIT

pytestmark = pytest.mark.corpus

MG = "https://w3id.org/movement-graph/ontology#"
BASE = "https://w3id.org/movement-graph/"
XSD = "http://www.w3.org/2001/XMLSchema#"

# Written out independently of mg_rdf.schema: (type, field) -> (property, reverse property)
REFERENCE_FIELDS = {
    ("organization", "strategies"): ("strategy", "strategyAdoptedBy"),
    ("organization", "key_people"): ("keyPerson", "keyPersonOf"),
    ("organization", "board_and_advisors"): ("boardMemberOrAdvisor", "boardMemberOrAdvisorOf"),
    ("organization", "related_orgs"): ("relatedOrganization", "relatedOrganization"),
    ("organization", "funders"): ("funder", "funds"),
    ("local-group", "parent_org"): ("parentOrganization", "localGroup"),
    ("local-group", "key_people"): ("keyPerson", "keyPersonOf"),
    ("campaign", "lead_orgs"): ("leadOrganization", "leadsCampaign"),
    ("campaign", "participating_orgs"): ("participatingOrganization", "organizationParticipatesIn"),
    ("campaign", "events"): ("event", "partOfCampaign"),
    ("campaign", "strategies"): ("strategy", "strategyAdoptedBy"),
    ("event", "campaign"): ("partOfCampaign", "event"),
    ("event", "participating_orgs"): ("participatingOrganization", "organizationParticipatesIn"),
    ("event", "participating_people"): ("participatingPerson", "personParticipatesIn"),
    ("event", "related_events"): ("relatedEvent", "relatedEvent"),
    ("strategy", "parent_strategy"): ("parentStrategy", "subStrategy"),
    ("strategy", "related_strategies"): ("relatedStrategy", "relatedStrategyOf"),
    ("message", "originating_person"): ("originatingPerson", "originatingPersonOf"),
    ("message", "originating_org"): ("originatingOrganization", "originatingOrganizationOf"),
    ("message", "propagated_by_orgs"): ("propagatedBy", "propagates"),
    ("message", "related_messages"): ("relatedMessage", "relatedMessageOf"),
    ("funder", "funded_orgs"): ("funds", "funder"),
    ("person", "voice_entry"): ("voiceEntry", "personEntry"),
    ("voice", "person_entry"): ("personEntry", "voiceEntry"),
    ("voice", "recent_works"): ("recentWork", "recentWorkOf"),
    ("publication", "authors"): ("author", "authorOf"),
}
DATE_FIELDS = {("organization", "founded"): "founded", ("local-group", "founded"): "founded",
               ("campaign", "start_date"): "startDate", ("campaign", "end_date"): "endDate",
               ("event", "date"): "date", ("publication", "date"): "publicationDate"}
DIRS = {"organizations": "organization", "local-groups": "local-group", "campaigns": "campaign",
        "events": "event", "strategies": "strategy", "messages": "message", "funders": "funder",
        "persons": "person", "voices": "voice", "publications": "publication"}


def read_yaml_corpus(files: dict[str, str]) -> dict[str, dict]:
    """{id: {"path", "data", "body"}} read with plain PyYAML."""
    out = {}
    for path, text in files.items():
        _, fm, body = text.split("---\n", 2) if text.startswith("---\n") else ("", "", text)
        data = yaml.safe_load(fm)
        out[data["id"]] = {"path": path, "data": data, "body": body}
    return out


def folder_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted((root / "entities").glob("*/*.md"))}


@pytest.fixture(scope="module")
def head_yaml(corpus_dir):
    return read_yaml_corpus(folder_files(corpus_dir))


def pairs(store, prop: str) -> set[tuple[str, str]]:
    q = f"SELECT ?s ?o WHERE {{ ?s <{MG}{prop}> ?o }}"
    return {(r["s"].value, r["o"].value) for r in store.query(q, use_default_graph_as_union=True)}


def iri(entity_id: str) -> str:
    return BASE + "id/" + entity_id


def as_list(v) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def test_entity_counts_per_type_match_the_files(head_store, corpus_dir):
    expected = Counter()
    for p in (corpus_dir / "entities").glob("*/*.md"):
        expected[DIRS[p.parent.name]] += 1
    assert sum(expected.values()) == 828
    q = f"""SELECT ?c (COUNT(?e) AS ?n) WHERE {{ GRAPH ?g {{ ?g <{MG}describes> ?e . ?e a ?c }} }} GROUP BY ?c"""
    got = {r["c"].value.removeprefix(MG): int(r["n"].value) for r in head_store.query(q)}
    cls = {"organization": "Organization", "local-group": "LocalGroup", "campaign": "Campaign", "event": "Event",
           "strategy": "Strategy", "message": "Message", "funder": "Funder", "person": "Person",
           "voice": "Voice", "publication": "Publication"}
    assert got == {cls[t]: n for t, n in expected.items()}


def check_references(store, corpus: dict[str, dict]) -> int:
    expected: dict[str, set] = defaultdict(set)
    reverse: dict[str, set] = defaultdict(set)
    total = 0
    for eid, e in corpus.items():
        for (etype, field), (prop, inv) in REFERENCE_FIELDS.items():
            if e["data"]["type"] != etype:
                continue
            for target in as_list(e["data"].get(field)):
                total += 1
                expected[prop].add((iri(eid), iri(target)))
                if target in corpus:  # reverses are materialised for targets that exist
                    reverse[inv].add((iri(target), iri(eid)))
    for prop in set(expected) | set(reverse):
        got = pairs(store, prop)
        missing = (expected[prop] | reverse[prop]) - got
        assert not missing, f"mg:{prop}: {len(missing)} expected triples missing, e.g. {sorted(missing)[:3]}"
    return total


def test_every_frontmatter_reference_is_a_triple_with_its_reverse(head_store, head_yaml):
    assert check_references(head_store, head_yaml) > 2300


def test_affiliations_keep_org_role_and_period(head_store, head_yaml):
    expected = set()
    for eid, e in head_yaml.items():
        for i, aff in enumerate(as_list(e["data"].get("affiliations")), start=1):
            expected.add((f"{iri(eid)}#affiliation-{i}", iri(aff["org"]), str(aff.get("role") or ""),
                          "" if aff.get("period") is None else str(aff["period"])))
    q = f"""SELECT ?a ?org ?role ?period WHERE {{ ?p <{MG}affiliation> ?a . ?a <{MG}organization> ?org .
            OPTIONAL {{ ?a <{MG}role> ?role }} OPTIONAL {{ ?a <{MG}period> ?period }} }}"""
    got = {(r["a"].value, r["org"].value, r["role"].value if r["role"] else "",
            r["period"].value if r["period"] else "") for r in head_store.query(q, use_default_graph_as_union=True)}
    assert len(expected) > 180
    assert expected == got
    # the person -> organisation shortcut and its reverse
    shortcut = {(iri(eid), iri(a["org"])) for eid, e in head_yaml.items()
                for a in as_list(e["data"].get("affiliations"))}
    assert shortcut <= pairs(head_store, "affiliatedWith")
    assert {(o, p) for p, o in shortcut if o.removeprefix(BASE + "id/") in head_yaml} <= \
        pairs(head_store, "hasAffiliatedPerson")


def expected_date(value) -> tuple[str, str] | None:
    if isinstance(value, dt.date):
        return value.isoformat(), XSD + "date"
    if isinstance(value, int):
        return f"{value:04d}", XSD + "gYear"
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d{2}", value):
            return value, XSD + "gYearMonth"
        if re.fullmatch(r"\d{4}", value):
            return value, XSD + "gYear"
    return None


def test_dates_are_typed_by_their_precision_and_ongoing_is_not_a_date(head_store, head_yaml):
    seen = Counter()
    for (etype, field), prop in DATE_FIELDS.items():
        got = {}
        q = f"SELECT ?s ?d WHERE {{ ?s <{MG}{prop}> ?d }}"
        for r in head_store.query(q, use_default_graph_as_union=True):
            got[r["s"].value] = (r["d"].value, r["d"].datatype.value)
        for eid, e in head_yaml.items():
            if e["data"]["type"] != etype or e["data"].get(field) in (None, ""):
                continue
            value = e["data"][field]
            if value == "ongoing":
                assert iri(eid) not in got, f"{eid}: 'ongoing' became a date"
                seen["ongoing"] += 1
                continue
            want = expected_date(value)
            assert want is not None, f"{eid} {field}: unexpected value {value!r} in the corpus"
            assert got.get(iri(eid)) == want, f"{eid} {field}={value!r}"
            seen[want[1]] += 1
    assert seen[XSD + "date"] > 100 and seen[XSD + "gYear"] > 100 and seen[XSD + "gYearMonth"] > 20
    assert seen["ongoing"] == 68
    ongoing = {s for s, _ in pairs(head_store, "ongoing")}
    assert ongoing == {iri(eid) for eid, e in head_yaml.items() if e["data"].get("end_date") == "ongoing"}


def test_sources_keep_url_checked_date_and_note(head_store, head_yaml):
    q = f"""SELECT ?e ?c ?url ?checked ?note WHERE {{ ?e <{MG}source> ?c . ?c <{MG}url> ?url .
            OPTIONAL {{ ?c <{MG}lastChecked> ?checked }} OPTIONAL {{ ?c <{MG}note> ?note }} }}"""
    got = {r["c"].value: (r["url"].value, r["checked"].value if r["checked"] else None,
                          r["note"].value if r["note"] else None)
           for r in head_store.query(q, use_default_graph_as_union=True)}
    n = 0
    for eid, e in head_yaml.items():
        for i, src in enumerate(as_list(e["data"].get("sources")), start=1):
            n += 1
            checked = src.get("last_checked")
            assert got[f"{iri(eid)}#source-{i}"] == (
                src["url"], checked.isoformat() if isinstance(checked, dt.date) else checked,
                None if src.get("note") is None else str(src["note"])), f"{eid} sources[{i - 1}]"
    assert n == len(got) == 6300


def test_source_urls_are_iris_so_they_join_with_wikidata(head_store):
    q = f"SELECT (COUNT(*) AS ?n) WHERE {{ ?c a <{MG}SourceCitation> ; <{MG}url> ?u . FILTER(isIRI(?u)) }}"
    assert int(next(iter(head_store.query(q, use_default_graph_as_union=True)))["n"].value) == 6300
    q = f"SELECT ?o ?w WHERE {{ ?o a <{MG}Organization> ; <{MG}website> ?w }}"
    sites = [r["w"] for r in head_store.query(q, use_default_graph_as_union=True)]
    assert len(sites) == 131 and all(type(w).__name__ == "NamedNode" for w in sites)


def test_tags_are_skos_concepts_including_bare_years(head_store, head_yaml):
    """Each tag is a concept; spellings that differ only in case or punctuation share one."""
    expected: dict[str, set] = defaultdict(set)
    labels: dict[str, set] = defaultdict(set)
    for eid, e in head_yaml.items():
        for tag in as_list(e["data"].get("tags")):
            key = re.sub(r"[^\w.\-]+", "-", str(tag).strip().lower()).strip("-")
            expected[key].add(iri(eid))
            labels[key].add(str(tag))
    q = f"""SELECT ?t ?e WHERE {{ ?e <{MG}tag> ?t . ?t a <http://www.w3.org/2004/02/skos/core#Concept> }}"""
    got: dict[str, set] = defaultdict(set)
    for r in head_store.query(q, use_default_graph_as_union=True):
        got[r["t"].value.removeprefix(BASE + "tag/")].add(r["e"].value)
    assert "2023" in got, "a bare-year tag is a concept labelled with the year"
    assert got == expected
    q = """SELECT ?t ?l WHERE { ?t <http://www.w3.org/2004/02/skos/core#prefLabel>|<http://www.w3.org/2004/02/skos/core#altLabel> ?l }"""
    got_labels: dict[str, set] = defaultdict(set)
    for r in head_store.query(q, use_default_graph_as_union=True):
        if r["t"].value.startswith(BASE + "tag/"):
            got_labels[r["t"].value.removeprefix(BASE + "tag/")].add(r["l"].value)
    assert got_labels == labels, "every spelling of a tag is kept as a label"


def markdown_entity_links(body: str, path: str) -> set[str]:
    """Entity ids a body links to, read with markdown-it-py (independent of mg_rdf.links)."""
    out = set()
    for tok in MarkdownIt("commonmark").parse(body):
        for child in tok.children or []:
            if child.type != "link_open":
                continue
            href = child.attrs["href"].split("#", 1)[0]
            if not href or "://" in href or href.startswith("mailto:"):
                continue
            target = PurePosixPath(path).parent.joinpath(href)
            parts = []
            for part in target.parts:
                if part == "..":
                    parts.pop() if parts else None
                elif part != ".":
                    parts.append(part)
            if len(parts) == 3 and parts[0] == "entities" and parts[2].endswith(".md"):
                out.add(parts[2][:-3])
    return out


def test_body_links_to_entities_become_mentions_with_reverses(head_store, head_yaml):
    expected = set()
    for eid, e in head_yaml.items():
        for target in markdown_entity_links(e["body"], e["path"]):
            if target in head_yaml and target != eid:
                expected.add((iri(eid), iri(target)))
    got = pairs(head_store, "mentions")
    assert len(expected) > 4500  # ~6,900 body links, 4,667 distinct (source, target) pairs
    # frontmatter prose (origin, notable_for, effects…) adds mentions beyond the bodies
    assert expected <= got, f"missing mentions, e.g. {sorted(expected - got)[:3]}"
    assert {(o, s) for s, o in expected} <= pairs(head_store, "mentionedBy")
    assert all(o.removeprefix(BASE + "id/") in head_yaml for _, o in got), "a mention points to a missing entity"


def test_links_to_other_repository_paths_do_not_invent_entities(head_store):
    q = f"""SELECT (COUNT(DISTINCT ?o) AS ?n) WHERE {{ ?s <{MG}mentions> ?o .
            FILTER NOT EXISTS {{ GRAPH ?g {{ ?g <{MG}describes> ?o }} }} }}"""
    assert int(next(iter(head_store.query(q, use_default_graph_as_union=True)))["n"].value) == 0


def test_every_entity_graph_says_which_file_and_commit_it_came_from(head_store, head_yaml):
    q = f"""SELECT ?e ?path ?commit ?from WHERE {{ GRAPH ?g {{ ?g <{MG}describes> ?e ; <{MG}sourcePath> ?path ;
            <{MG}corpusCommit> ?commit ; <http://www.w3.org/ns/prov#wasDerivedFrom> ?from }} }}"""
    rows = {r["e"].value: (r["path"].value, r["commit"].value, r["from"].value) for r in head_store.query(q)}
    assert len(rows) == len(head_yaml)
    for eid, e in head_yaml.items():
        path, commit, src = rows[iri(eid)]
        assert (path, commit) == (e["path"], HEAD_COMMIT)
        assert src == f"https://github.com/Make-AI-Good/movement-graph/blob/{HEAD_COMMIT}/{e['path']}"


def test_comment_cut_names_are_reported_with_their_line(head_analysis, corpus_dir):
    cut = [p for p in head_analysis.problems if p.rule == "comment-cut" and p.field == "name"]
    assert len(cut) == 4
    for p in cut:
        line = (corpus_dir / p.path).read_text(encoding="utf-8").splitlines()[p.line - 1]
        assert line.startswith("name: ") and " #" in line
    assert 90 <= sum(1 for p in head_analysis.problems if p.rule == "comment-cut") <= 110


def test_validation_at_head_reports_only_the_real_defects(head_analysis, head_yaml):
    violations = [p for p in head_analysis.problems if p.severity.value == "violation"]
    rules = Counter(p.rule for p in violations)
    assert set(rules) == {"dangling-reference", "reference-type", "symmetric-pair"}, rules
    # dangling: the id really is missing
    for p in violations:
        if p.rule == "dangling-reference":
            assert p.value not in head_yaml
    assert rules["dangling-reference"] == 2
    # wrong type: an lg- id where an organisation is expected (checked against the YAML)
    for p in violations:
        if p.rule == "reference-type":
            assert p.value.startswith("lg-") and head_yaml[p.value]["data"]["type"] == "local-group"
    assert rules["reference-type"] == 49
    # one-sided symmetric pairs: the other side really does not list it
    for p in violations:
        if p.rule == "symmetric-pair":
            owner = next(e for e in head_yaml.values() if e["path"] == p.path)
            assert p.value not in as_list(owner["data"].get(p.field)), p
    assert rules["symmetric-pair"] == 32


def git_files(git_dir: Path, rev: str) -> dict[str, str]:
    """{path: text} of the entity files at ``rev``, read with git itself."""
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", rev, "--", "entities"],
                             capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in listing.splitlines()]
    out = {}
    for _, _, blob, path in rows:
        if path.endswith(".md"):
            out[path] = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", blob],
                                       capture_output=True, check=True).stdout.decode("utf-8")
    return out


def test_v1_0_0_builds_from_the_bundle_with_its_counts_and_references(v1_build, bundle):
    from pyoxigraph import Store

    from mg_rdf.source import _git_dir_for

    files = git_files(_git_dir_for(bundle, None), "v1.0.0")
    expected = Counter(DIRS[path.split("/")[1]] for path in files)
    assert sum(expected.values()) == 473
    assert dict(v1_build.entities_by_type) == dict(expected)
    a = v1_build.analysis
    assert a.source.provenance.commit == V1_COMMIT
    corpus = read_yaml_corpus(files)
    store = Store.read_only(str(v1_build.store_path))
    assert check_references(store, corpus) > 1000
    # v1.0.0 guarantees "0 dangling references": every id referenced exists
    referenced = {t for e in corpus.values() for (etype, f) in REFERENCE_FIELDS if e["data"]["type"] == etype
                  for t in as_list(e["data"].get(f))}
    assert referenced <= set(corpus)
    assert not [p for p in a.problems if p.rule == "dangling-reference"]


def test_banbs_campaign_at_v1_has_seven_declared_connections(v1_build):
    from pyoxigraph import Store

    store = Store.read_only(str(v1_build.store_path))
    camp = iri("camp-access-now-ban-biometric-surveillance-global-2021-ongoing")
    q = f"""SELECT ?p ?o WHERE {{ GRAPH <{BASE}graph/camp-access-now-ban-biometric-surveillance-global-2021-ongoing>
            {{ <{camp}> ?p ?o . FILTER(STRSTARTS(STR(?o), "{BASE}id/") && !CONTAINS(STR(?o), "#")) }}
            FILTER(?p IN (<{MG}leadOrganization>, <{MG}participatingOrganization>, <{MG}event>, <{MG}strategy>)) }}"""
    rows = [(r["p"].value, r["o"].value) for r in store.query(q)]
    assert len(rows) == 7
    assert len({o for _, o in rows}) == 6
