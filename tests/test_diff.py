"""`mg-rdf diff`: what changed between two pins, entity by entity, as a summary and as RDF.

A small history of the sample corpus (tests/sample_history.py) pins each kind of
change; the real history (the bundle) is checked against counts taken from git
itself (`git ls-tree` file names, `git log --diff-filter=R`), never from mg-rdf.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import rdflib
from click.testing import CliRunner
from pyoxigraph import NamedNode

from mg_rdf.build import analyse
from mg_rdf.assembly import entity_graphs
from mg_rdf.cli import main
from mg_rdf.config import ONTOLOGY_PATH
from mg_rdf.diff import PinRef, compare, content_from_quads, serialize_diff, summary_text
from mg_rdf.pin_build import diff_revisions
from mg_rdf.source import GitSource
from mg_rdf.vocab import MG, DataIris
from sample_history import RENAMED, ids_at, make_history

IRIS = DataIris()
CHANGES_ONTOLOGY = ONTOLOGY_PATH.with_name("mg-changes.ttl")


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return make_history(tmp_path_factory.mktemp("history") / "repo")


@pytest.fixture(scope="module")
def v1_v2(history):
    return diff_revisions(history, "v1", "v2", IRIS)


def content(repo: Path, rev: str):
    src = GitSource(repo, rev)
    a = analyse(src, IRIS, shacl=False)
    return content_from_quads((q for eg in entity_graphs(a.index, src.provenance, IRIS) for q in eg.quads), IRIS)


def test_entity_counts_agree_with_the_file_names_in_git(history, v1_v2):
    ids1, ids2 = ids_at(history, "v1"), ids_at(history, "v2")
    c = v1_v2.counts()
    assert (v1_v2.before, v1_v2.after) == (len(ids1), len(ids2))
    assert c["added"] + c["renamed"] == len(ids2 - ids1), "added + renamed = ids only at v2"
    assert c["removed"] + c["renamed"] == len(ids1 - ids2), "removed + renamed = ids only at v1"
    assert v1_v2.renames() == RENAMED
    assert [ch.id for ch in v1_v2.of_kind("removed")] == ["person-hamid-khan"]
    assert [ch.id for ch in v1_v2.of_kind("added")] == ["org-new-member"]


def test_a_modified_entity_lists_exactly_the_triples_its_file_changed(v1_v2):
    edri = next(ch for ch in v1_v2.changes if ch.id == "org-edri")
    assert edri.kind == "modified"
    e = IRIS.entity("org-edri")
    added = {(t.subject.value, t.predicate.value, t.object.value) for t in edri.added}
    removed = {(t.subject.value, t.predicate.value, t.object.value) for t in edri.removed}
    assert (e, MG + "tag", IRIS.tag("brand-new-tag")) in added
    assert (e, MG + "name", "Renamed European Digital Rights (EDRi)") in added
    assert (e, MG + "name", "European Digital Rights (EDRi)") in removed
    assert all(t.subject.value == e or t.subject.value.startswith(e + "#") for t in edri.added + edri.removed)


def test_a_pure_rename_changes_only_the_identifier(v1_v2):
    old, new = "strat-ban-not-regulate", "strat-prohibition-over-regulation"
    ch = next(ch for ch in v1_v2.changes if ch.id == new)
    assert (ch.kind, ch.old_id) == ("renamed", old) and ch.evidence.startswith("git rename")
    n = IRIS.entity(new)
    assert [(t.subject.value, t.predicate.value, t.object.value) for t in ch.added] == [(n, MG + "identifier", new)]
    assert [(t.subject.value, t.predicate.value, t.object.value) for t in ch.removed] == [(n, MG + "identifier", old)]


def test_renames_are_found_by_content_when_git_says_nothing(history):
    """Without git's rename list, the same content under a new id is still a rename; a file whose
    type changed too is not the same content, so it becomes one removal and one addition."""
    d = compare(content(history, "v1"), content(history, "v2"), PinRef("v1", "v1"), PinRef("v2", "v2"), IRIS)
    assert d.renames() == {"strat-ban-not-regulate": "strat-prohibition-over-regulation"}
    assert next(ch for ch in d.changes if ch.id == "strat-prohibition-over-regulation").evidence == \
        "same content under a new id"
    assert {ch.id for ch in d.of_kind("removed")} == {"person-hamid-khan", "lg-open-rights-group-sheffield"}


def test_reverse_links_and_provenance_are_not_changes(history, v1_v2):
    """The coalition's file did not change; it names person-hamid-khan, who was deleted. Its graph
    loses the reverse link (excluded) and the mention of him in its body (a statement of its own)."""
    lapd = next(ch for ch in v1_v2.changes if ch.id == "lg-stop-lapd-spying-coalition")
    e = IRIS.entity("lg-stop-lapd-spying-coalition")
    assert lapd.added == []
    assert [(t.subject.value, t.predicate.value, t.object.value) for t in lapd.removed] == \
        [(e, MG + "mentions", IRIS.entity("person-hamid-khan"))]
    # v2 -> v3 changes one file; every graph's provenance (the commit) changed, and none of it counts
    d = diff_revisions(history, "v2", "v3", IRIS)
    assert [(ch.kind, ch.id) for ch in d.changes] == [("modified", "msg-banbs")]
    assert d.unchanged == d.before - 1


def test_rdf_forms_parse_and_use_only_documented_terms(v1_v2):
    documented = rdflib.Graph().parse(CHANGES_ONTOLOGY) + rdflib.Graph().parse(ONTOLOGY_PATH)
    defined = {str(s) for s in documented.subjects() if str(s).startswith(MG)}
    for fmt, rdflib_format in (("ttl", "turtle"), ("nt", "nt"), ("jsonld", "json-ld"), ("nq", "nquads")):
        data = serialize_diff(v1_v2, fmt, IRIS)
        g = rdflib.Dataset() if fmt == "nq" else rdflib.Graph()
        g.parse(data=data, format=rdflib_format)
        assert len(g) > 0, fmt
    g = rdflib.Graph().parse(data=serialize_diff(v1_v2, "ttl", IRIS), format="turtle")
    used = {str(t) for triple in g for t in triple if str(t).startswith(MG) and "/id/" not in str(t)}
    assert used and used <= defined, f"undocumented terms: {sorted(used - defined)}"
    mg, rdf = rdflib.Namespace(MG), rdflib.RDF
    changes = set(g.subjects(rdf.type, mg.EntityChange))
    assert len(changes) == len(v1_v2.changes)
    renamed = [c for c in changes if (c, mg.changeKind, mg["change-renamed"]) in g]
    assert len(renamed) == 2
    # the additions of the pure rename are exactly its one identifier statement, reified
    strat = next(c for c in renamed if str(c).endswith("#strat-prohibition-over-regulation"))
    statements = list(g.objects(strat, mg.addition))
    assert [(str(g.value(s, rdf.subject)), str(g.value(s, rdf.predicate)), str(g.value(s, rdf.object)))
            for s in statements] == [(IRIS.entity("strat-prohibition-over-regulation"), MG + "identifier",
                                      "strat-prohibition-over-regulation")]
    assert (strat, mg.formerEntity, rdflib.URIRef(IRIS.entity("strat-ban-not-regulate"))) in g


def test_cli_prints_a_summary_and_rdf(history):
    r = CliRunner().invoke(main, ["diff", str(history), "v1", "v2"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "1 added, 1 removed, 2 renamed" in r.output
    assert "strat-ban-not-regulate → strat-prohibition-over-regulation" in r.output
    r = CliRunner().invoke(main, ["diff", str(history), "v1", "v2", "--format", "nq"], catch_exceptions=False)
    assert r.exit_code == 0 and "<https://w3id.org/movement-graph/diff/v1/v2>" in r.output
    r = CliRunner().invoke(main, ["diff", str(history), "v1", "no-such-tag"])
    assert r.exit_code != 0 and "no commit called 'no-such-tag'" in r.output and "Traceback" not in r.output


# -- the real history ------------------------------------------------------------------------

def bundle_git(bundle: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(GitSource(bundle, "HEAD").git_dir), *args], check=True,
                          capture_output=True, text=True).stdout


def bundle_ids(bundle: Path, rev: str) -> set[str]:
    names = bundle_git(bundle, "ls-tree", "-r", "--name-only", rev, "--", "entities").split("\n")
    return {Path(n).stem for n in names if n.endswith(".md")}


@pytest.fixture(scope="module")
def bundle_v1_v2(bundle):
    return diff_revisions(bundle, "v1.0.0", "v2.0.0", IRIS)


@pytest.mark.corpus
def test_bundle_v1_to_v2_counts_agree_with_git_ls_tree(bundle, bundle_v1_v2):
    ids1, ids2 = bundle_ids(bundle, "v1.0.0"), bundle_ids(bundle, "v2.0.0")
    d, c = bundle_v1_v2, bundle_v1_v2.counts()
    assert (d.before, d.after) == (len(ids1), len(ids2)), "every file of both releases is an entity"
    assert c["added"] + c["renamed"] == len(ids2 - ids1)
    assert c["removed"] + c["renamed"] == len(ids1 - ids2)
    assert c["added"] + c["removed"] + c["renamed"] + c["modified"] + d.unchanged == len(ids1 | ids2) - c["renamed"]


@pytest.mark.corpus
def test_bundle_renames_are_the_ones_git_log_records(bundle, bundle_v1_v2):
    """`git log --diff-filter=R v1.0.0..v2.0.0`: a rename of an id that existed at v1.0.0 into one that
    exists at v2.0.0 is a rename (lg-rideshare-drivers-united); one of an id added after v1.0.0 is an
    addition (org-entregadores-antifascistas)."""
    ids1, ids2 = bundle_ids(bundle, "v1.0.0"), bundle_ids(bundle, "v2.0.0")
    log = bundle_git(bundle, "log", "--diff-filter=R", "--name-status", "--format=", "v1.0.0..v2.0.0", "--", "entities")
    pairs = [(Path(f[1]).stem, Path(f[2]).stem) for f in (line.split("\t") for line in log.splitlines() if line)]
    assert pairs, "the history has renames between the two releases"
    expected = {o: n for o, n in pairs if o in ids1 and o not in ids2 and n in ids2}
    assert bundle_v1_v2.renames() == expected
    assert expected == {"lg-rideshare-drivers-united": "org-rideshare-drivers-united"}
    added = {ch.id for ch in bundle_v1_v2.of_kind("added")}
    assert {n for o, n in pairs if o not in ids1} <= added


@pytest.mark.corpus
def test_bundle_modified_entities_changed_their_file_or_their_mentions(bundle, bundle_v1_v2):
    """An entity whose file git says is unchanged can only differ in mg:mentions (a mention is stated
    when the entity it links to exists)."""
    changed = bundle_git(bundle, "diff", "--name-only", "v1.0.0", "v2.0.0", "--", "entities").split("\n")
    changed_ids = {Path(p).stem for p in changed if p}
    for ch in bundle_v1_v2.of_kind("modified"):
        if ch.id not in changed_ids:
            assert {t.predicate.value for t in ch.added + ch.removed} == {MG + "mentions"}, ch.id
    banbs = next(ch for ch in bundle_v1_v2.changes
                 if ch.id == "camp-access-now-ban-biometric-surveillance-global-2021-ongoing")
    assert banbs.kind == "modified"
    assert summary_text(bundle_v1_v2, IRIS).startswith("v1.0.0 (3cc1a36, 2026-06-02) → v2.0.0 (47ec313, ")
    assert isinstance(banbs.added[0].subject, NamedNode)
