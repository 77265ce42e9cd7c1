"""Incremental builds give exactly the graph a full build of the same files gives."""

from __future__ import annotations

import shutil
from pathlib import Path

from pyoxigraph import Store

from conftest import ROOT
from mg_rdf.build import build
from mg_rdf.dump import dump_bytes
from mg_rdf.source import FolderSource
from mg_rdf.store import current_build
from mg_rdf.vocab import DataIris

IRIS = DataIris()


def nquads(store_dir: Path) -> bytes:
    """Canonical N-Quads of a store (sorted, without the wall-clock build record)."""
    store = Store.read_only(str(current_build(store_dir)))
    data = dump_bytes(store, "nq", IRIS, "attribution")
    return b"\n".join(line for line in data.splitlines() if not line.startswith(b"#"))


def problems(result) -> list:
    return result.analysis.sorted_problems()


def check_same_as_full(corpus: Path, inc_store: Path, tmp_path: Path, label: str):
    inc = build(FolderSource(corpus), inc_store, IRIS, workers=1)
    full_store = tmp_path / f"full-{label}"
    full = build(FolderSource(corpus), full_store, IRIS, workers=1, full=True)
    assert inc.incremental and not full.incremental
    assert nquads(inc_store) == nquads(full_store), f"{label}: incremental and full builds differ"
    assert problems(inc) == problems(full), f"{label}: the reports differ"
    return inc


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_incremental_equals_full_after_edits_additions_deletions_and_renames(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    first = build(FolderSource(corpus), store, IRIS, workers=1)
    assert not first.incremental

    # nothing changed: nothing is mapped again
    same = check_same_as_full(corpus, store, tmp_path, "unchanged")
    assert same.rebuilt == 0

    # an edit of one entity's name, tags and a reference
    org = corpus / "entities/organizations/org-edri.md"
    edit(org, "tags: [", "tags: [brand-new-tag, ")
    edit(org, "name: ", "name: Renamed ")
    r = check_same_as_full(corpus, store, tmp_path, "edit")
    assert r.rebuilt < 10

    # a reference to an id that does not exist yet, then the entity it names is added
    camp = corpus / "entities/campaigns/camp-access-now-ban-biometric-surveillance-global-2021-ongoing.md"
    edit(camp, "participating_orgs: [", "participating_orgs: [org-new-member, ")
    check_same_as_full(corpus, store, tmp_path, "dangling")
    new = (corpus / "entities/organizations/org-access-now.md").read_text()
    new = new.replace("id: org-access-now", "id: org-new-member").replace("name: Access Now", "name: New Member")
    (corpus / "entities/organizations/org-new-member.md").write_text(new)
    r = check_same_as_full(corpus, store, tmp_path, "addition")
    assert r.rebuilt >= 2, "the campaign pointing at the new id is mapped again for its reverse link"

    # a deletion of an entity others point to
    (corpus / "entities/persons/person-hamid-khan.md").unlink()
    check_same_as_full(corpus, store, tmp_path, "deletion")

    # a rename: same content under a new file name and id
    old = corpus / "entities/strategies/strat-ban-not-regulate.md"
    text = old.read_text().replace("id: strat-ban-not-regulate", "id: strat-prohibition-over-regulation")
    old.unlink()
    (corpus / "entities/strategies/strat-prohibition-over-regulation.md").write_text(text)
    check_same_as_full(corpus, store, tmp_path, "rename")

    # a file that becomes unreadable, then readable again
    broken = corpus / "entities/messages/msg-banbs.md"
    good = broken.read_text()
    broken.write_text(good.replace("name: ", "name: a: b ", 1))
    check_same_as_full(corpus, store, tmp_path, "broken")
    broken.write_text(good)
    check_same_as_full(corpus, store, tmp_path, "repaired")
