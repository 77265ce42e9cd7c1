"""Incremental builds give exactly the graph a full build of the same files gives."""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
from pyoxigraph import Store

from conftest import ROOT
from mg_rdf.build import BuildMemory, BuildRefused, build
from mg_rdf.dump import dump_bytes
from mg_rdf import source as source_module
from mg_rdf import store as store_module
from mg_rdf.source import FolderSource
from mg_rdf.store import WorkingCopy, current_build
from mg_rdf.vocab import DataIris
from mg_rdf.wikidata_links import linkset_graph

IRIS = DataIris()


def nquads(store_dir: Path) -> bytes:
    """Canonical N-Quads of a store (sorted, without the wall-clock build record)."""
    store = Store.read_only(str(current_build(store_dir)))
    data = dump_bytes(store, "nq", IRIS, "attribution")
    return b"\n".join(line for line in data.splitlines() if not line.startswith(b"#"))


def problems(result) -> list:
    return result.analysis.sorted_problems()


def check_same_as_full(corpus: Path, inc_store: Path, tmp_path: Path, label: str, memory: BuildMemory | None = None):
    inc = build(FolderSource(corpus), inc_store, IRIS, workers=1, memory=memory)
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


@pytest.mark.parametrize("trust_stats,remember", [(False, False), (True, False), (True, True)],
                         ids=["hashing", "stat-cache", "remembered"])
def test_incremental_equals_full_after_edits_additions_deletions_and_renames(tmp_path, monkeypatch, trust_stats,
                                                                            remember):
    """``remembered``: as the watcher builds, keeping what it knows between builds (BuildMemory)."""
    if trust_stats:
        # trust a file's stat however recently it changed, so unchanged files are never re-read
        # here (normally a file changed < 2 s before a build is hashed again by the next one)
        monkeypatch.setattr(source_module, "RACY_NS", 0)
    memory = BuildMemory() if remember else None
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    first = build(FolderSource(corpus), store, IRIS, workers=1, memory=memory)
    assert not first.incremental

    # nothing changed: nothing is mapped again
    same = check_same_as_full(corpus, store, tmp_path, "unchanged", memory)
    assert same.rebuilt == 0
    if memory is not None:
        assert memory.build_dir == current_build(store) and memory.copy is not None and memory.stubs

    # an edit of one entity's name, tags and a reference
    org = corpus / "entities/organizations/org-edri.md"
    edit(org, "tags: [", "tags: [brand-new-tag, ")
    edit(org, "name: ", "name: Renamed ")
    r = check_same_as_full(corpus, store, tmp_path, "edit", memory)
    assert r.rebuilt < 10

    # a reference to an id that does not exist yet, then the entity it names is added
    camp = corpus / "entities/campaigns/camp-access-now-ban-biometric-surveillance-global-2021-ongoing.md"
    edit(camp, "participating_orgs: [", "participating_orgs: [org-new-member, ")
    check_same_as_full(corpus, store, tmp_path, "dangling", memory)
    new = (corpus / "entities/organizations/org-access-now.md").read_text()
    new = new.replace("id: org-access-now", "id: org-new-member").replace("name: Access Now", "name: New Member")
    (corpus / "entities/organizations/org-new-member.md").write_text(new)
    r = check_same_as_full(corpus, store, tmp_path, "addition", memory)
    assert r.rebuilt >= 2, "the campaign pointing at the new id is mapped again for its reverse link"

    # a deletion of an entity others point to
    (corpus / "entities/persons/person-hamid-khan.md").unlink()
    check_same_as_full(corpus, store, tmp_path, "deletion", memory)

    # a rename: same content under a new file name and id
    old = corpus / "entities/strategies/strat-ban-not-regulate.md"
    text = old.read_text().replace("id: strat-ban-not-regulate", "id: strat-prohibition-over-regulation")
    old.unlink()
    (corpus / "entities/strategies/strat-prohibition-over-regulation.md").write_text(text)
    check_same_as_full(corpus, store, tmp_path, "rename", memory)

    # a file that becomes unreadable, then readable again
    broken = corpus / "entities/messages/msg-banbs.md"
    good = broken.read_text()
    broken.write_text(good.replace("name: ", "name: a: b ", 1))
    check_same_as_full(corpus, store, tmp_path, "broken", memory)
    broken.write_text(good)
    check_same_as_full(corpus, store, tmp_path, "repaired", memory)


@pytest.mark.corpus
@pytest.mark.parametrize("remember", [False, True], ids=["from-disk", "remembered"])
def test_incremental_equals_full_with_audits(corpus_dir, tmp_path, remember):
    """Audits depend on their entity's file (stale flag) and on the entities they cite: an
    incremental build re-reads only the audits whose inputs changed, and must still agree."""
    memory = BuildMemory() if remember else None
    corpus = tmp_path / "corpus"
    for folder in ("campaigns", "organizations"):
        shutil.copytree(corpus_dir / "entities" / folder, corpus / "entities" / folder)
    (corpus / "audits").mkdir()
    ids = {p.stem for p in (corpus / "entities").glob("*/*.md")}
    for audit in sorted((corpus_dir / "audits").glob("*.md")):
        if audit.stem in ids:
            shutil.copy(audit, corpus / "audits" / audit.name)
    store = tmp_path / "store"
    build(FolderSource(corpus), store, IRIS, workers=1, memory=memory)

    audited = sorted(p.stem for p in (corpus / "audits").glob("*.md"))
    edited = corpus / "entities" / "organizations" / f"{[a for a in audited if a.startswith('org-')][0]}.md"
    edit(edited, "\nname: ", "\nname: Edited ")            # its audit becomes stale
    r = check_same_as_full(corpus, store, tmp_path, "audited entity edited", memory)
    assert r.rebuilt == 1
    gone = corpus / "entities" / "campaigns" / f"{[a for a in audited if a.startswith('camp-')][0]}.md"
    gone.unlink()                                           # its audit becomes an orphan
    check_same_as_full(corpus, store, tmp_path, "audited entity deleted", memory)
    audit = corpus / "audits" / f"{audited[-1]}.md"
    edit(audit, "Decision: ", "Decision:  ")                # an audit file edited
    check_same_as_full(corpus, store, tmp_path, "audit edited", memory)
    (corpus / "audits" / f"{audited[-2]}.md").unlink()     # an audit removed
    check_same_as_full(corpus, store, tmp_path, "audit removed", memory)


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch):
    """A folder build remembers each file's size, times and inode: the next build hashes only
    files whose stat changed (and any changed less than RACY_NS before the build read it)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    monkeypatch.setattr(source_module, "RACY_NS", 0)
    build(FolderSource(corpus), store, IRIS, workers=1)
    reads: list[str] = []
    real = FolderSource._read

    def counting(self, full, rel):
        reads.append(rel)
        return real(self, full, rel)

    monkeypatch.setattr(FolderSource, "_read", counting)
    assert build(FolderSource(corpus), store, IRIS, workers=1).rebuilt == 0
    assert reads == []
    time.sleep(0.02)   # past the file system's timestamp tick
    edit(corpus / "entities/organizations/org-edri.md", "name: ", "name: Renamed ")
    r = build(FolderSource(corpus), store, IRIS, workers=1)
    assert reads == ["entities/organizations/org-edri.md"] and r.rebuilt >= 1
    assert "Renamed" in nquads(store).decode()
    # a file changed less than RACY_NS before a build read it is not trusted by the next one
    monkeypatch.setattr(source_module, "RACY_NS", 60 * 10**9)
    edit(corpus / "entities/organizations/org-edri.md", "name: Renamed ", "name: Again ")
    build(FolderSource(corpus), store, IRIS, workers=1)
    reads.clear()
    build(FolderSource(corpus), store, IRIS, workers=1)
    assert "entities/organizations/org-edri.md" in reads


def test_serve_watch_applies_an_edit_while_serving(tmp_path):
    """mg-rdf serve --watch: an edited file shows on the page without a restart."""
    import requests

    from live_server import start_server

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    server = start_server(tmp_path / "store", "--watch", str(corpus), log_dir=tmp_path)
    try:
        before = requests.get(server.url + "/page/org-edri", timeout=30).text
        assert "Renamed while serving" not in before
        edit(corpus / "entities/organizations/org-edri.md", "name: ", "name: Renamed while serving ")
        for _ in range(200):
            page = requests.get(server.url + "/page/org-edri", timeout=30).text
            if "Renamed while serving" in page:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the edit never reached the page")
    finally:
        server.stop()


def stated_and_counted(store_dir: Path) -> tuple[int, int]:
    """The quads the dataset description states, and those the store holds outside the graphs
    written after the statement (dataset description, build record, renames, Wikidata links)."""
    store = Store.read_only(str(current_build(store_dir)))
    stated = [int(s["n"].value) for s in store.query(
        f"SELECT ?n WHERE {{ GRAPH <{IRIS.dataset_graph}> {{ ?d <http://rdfs.org/ns/void#triples> ?n }} }}")]
    meta = {IRIS.dataset_graph, IRIS.base + "graph/build", IRIS.base + "graph/renames",
            linkset_graph(IRIS)}
    counted = sum(1 for q in store if getattr(q.graph_name, "value", None) not in meta)
    assert len(stated) == 1
    return stated[0], counted


def test_incremental_count_equals_the_store(tmp_path):
    """An incremental build states the previous count plus what its replaced graphs changed,
    without counting the whole store: it must be what a count of the store gives, after edits
    that add and remove quads, an addition and a deletion; and a manifest without a
    count (an older one) makes the build count the store."""
    from mg_rdf import manifest

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    first = build(FolderSource(corpus), store, IRIS, workers=1)
    assert (first.triples, first.triples) == stated_and_counted(store)

    counts = [first.triples]
    org = corpus / "entities/organizations/org-edri.md"
    steps = [
        lambda: edit(org, "tags: [", "tags: [brand-new-tag, another-new-tag, "),
        lambda: edit(org, "tags: [brand-new-tag, another-new-tag, ", "tags: ["),
        lambda: (corpus / "entities/organizations/org-new-member.md").write_text(
            (corpus / "entities/organizations/org-access-now.md").read_text()
            .replace("id: org-access-now", "id: org-new-member")),
        lambda: (corpus / "entities/persons/person-hamid-khan.md").unlink(),
    ]
    for step in steps:
        step()
        r = build(FolderSource(corpus), store, IRIS, workers=1)
        assert r.incremental
        assert (r.triples, r.triples) == stated_and_counted(store)
        counts.append(r.triples)
    assert all(a != b for a, b in zip(counts, counts[1:])), f"every step changes the number of quads: {counts}"

    # an older manifest has no count: the next build counts the whole store instead
    path = manifest.manifest_path(current_build(store))
    data = pickle.loads(path.read_bytes())
    del data["triples"]
    path.write_bytes(pickle.dumps(data))
    assert manifest.read_all(path, data["fingerprint"]) is not None
    edit(org, "tags: [", "tags: [brand-new-tag, ")
    r = build(FolderSource(corpus), store, IRIS, workers=1)
    assert r.incremental and (r.triples, r.triples) == stated_and_counted(store)


def test_remembered_state_is_not_trusted_once_another_build_is_current(tmp_path, monkeypatch):
    """A watcher keeps the manifest and a working copy of the build it made; when another build
    made ``current`` meanwhile, its next build reads that build's manifest from disk and copies
    that build, letting go of its own copy."""
    from mg_rdf import manifest

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    memory = BuildMemory()
    build(FolderSource(corpus), store, IRIS, workers=1, memory=memory)
    org = corpus / "entities/organizations/org-edri.md"
    edit(org, "name: ", "name: Watched ")
    read: list[Path] = []
    real_read = manifest.read_all
    monkeypatch.setattr(manifest, "read_all", lambda path, fp: read.append(path) or real_read(path, fp))
    check_same_as_full(corpus, store, tmp_path, "remembered", memory)
    assert read == [], "the watcher's own last build: its manifest is remembered, not read"
    own_copy = memory.copy.directory
    assert own_copy.is_dir()

    edit(org, "name: Watched ", "name: Elsewhere ")
    other = build(FolderSource(corpus), store, IRIS, workers=1)   # another process's build
    assert memory.build_dir != current_build(store) == other.store_path
    read.clear()
    edit(org, "name: Elsewhere ", "name: Watched again ")
    r = check_same_as_full(corpus, store, tmp_path, "after another build", memory)
    assert read[0] == manifest.manifest_path(other.store_path), "the other build's manifest, from disk"
    assert r.rebuilt == 1
    assert not own_copy.exists() and memory.copy.directory.is_dir()
    assert memory.build_dir == current_build(store) == r.store_path


def test_a_failed_build_leaves_nothing_remembered(tmp_path):
    """A build refused after it changed the working copy (here: --strict) must not leave that
    copy for the next build: an entity it removed comes back with its file."""
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    memory = BuildMemory()
    build(FolderSource(corpus), store, IRIS, workers=1, memory=memory)
    before = current_build(store)
    gone = corpus / "entities/persons/person-hamid-khan.md"
    text = gone.read_text()
    gone.unlink()
    with pytest.raises(BuildRefused):
        build(FolderSource(corpus), store, IRIS, workers=1, strict=True, memory=memory)
    assert current_build(store) == before
    assert memory.copy is None and memory.build_dir is None
    assert list((store / "builds").glob(".work-*")) == []
    gone.write_text(text)
    check_same_as_full(corpus, store, tmp_path, "after a refused build", memory)


def test_abandoned_working_copies_are_removed(tmp_path):
    """A working copy whose owner is gone (its lock free) is removed by the next build of any
    process; one whose owner is alive is left alone."""
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, IRIS, workers=1)
    live = WorkingCopy(store / "builds", current_build(store))
    dead = WorkingCopy(store / "builds", current_build(store))
    dead.store = None
    os.close(dead._owner)   # as when its process ends: the lock goes, the folder stays
    store_module._held_locks.discard(dead._owner)
    dead._owner = None
    build(FolderSource(corpus), store, IRIS, workers=1)
    assert not dead.directory.exists()
    assert live.directory.is_dir() and len(live.store) > 0
    live.close()
    assert not live.directory.exists()


def test_a_watcher_starts_from_the_current_build(tmp_path, monkeypatch):
    """Before its first build a watcher takes the store's current build as remembered (manifest,
    working copy, stubs), when it fits the corpus and this code; the first change is then
    applied from memory, the same as a full build."""
    import gc

    from mg_rdf import manifest
    from mg_rdf.watch import CorpusWatcher

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    assert not BuildMemory().recall(store, FolderSource(corpus), IRIS), "no build yet"
    build(FolderSource(corpus), store, IRIS, workers=1)
    assert not BuildMemory().recall(store, FolderSource(corpus, commit="0" * 40), IRIS), "another provenance"

    watcher = CorpusWatcher(corpus, store, IRIS)
    assert watcher.memory.recall(store, watcher.source(), IRIS)
    assert watcher.memory.build_dir == current_build(store) and watcher.memory.copy.directory.is_dir()
    assert len(watcher.memory.stubs) == len(list((corpus / "entities").glob("*/*.md")))
    read: list[Path] = []
    real_read = manifest.read_all
    monkeypatch.setattr(manifest, "read_all", lambda path, fp: read.append(path) or real_read(path, fp))
    edit(corpus / "entities/organizations/org-edri.md", "name: ", "name: Watched ")
    try:
        watcher.rebuild()
    finally:
        gc.unfreeze()   # the watcher sets its heap aside between builds; not this test process's
    assert read == [] and watcher.builds == 1
    assert 0 < watcher.last_swapped < watcher.last_seconds
    full = build(FolderSource(corpus), tmp_path / "full", IRIS, workers=1, full=True)
    assert nquads(store) == nquads(full.store_path.parent.parent)
    watcher.memory.forget()


def test_a_watcher_is_notified_of_edits_additions_and_deletions(tmp_path):
    """serve --watch does not wait for its interval's look: the system's notification (inotify)
    starts the build. The interval here is an hour, so only a notification can start one."""
    import gc

    from mg_rdf.watch import CorpusWatcher

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, IRIS, workers=1)
    watcher = CorpusWatcher(corpus, store, IRIS, interval=3600)
    watcher.start()

    def after(builds: int) -> bytes:
        for _ in range(600):
            if watcher.builds >= builds:
                return nquads(store)
            time.sleep(0.05)
        raise AssertionError(f"no build {builds} in 30 s: the change was not noticed")

    try:
        assert watcher.watching.wait(60)
        edit(corpus / "entities/organizations/org-edri.md", "name: ", "name: Notified ")
        assert b"Notified " in after(1)
        added = corpus / "entities/organizations/new-folder/org-notified-copy.md"
        added.parent.mkdir()   # a new folder is watched too
        added.write_text((corpus / "entities/organizations/org-edri.md").read_text().replace(
            "id: org-edri", "id: org-notified-copy"))
        assert b"org-notified-copy" in after(2)
        (corpus / "entities/organizations/.org-edri.md.swp").write_text("an editor's own file")
        added.unlink()
        assert b"org-notified-copy" not in after(3)
        assert watcher.builds == 3 and watcher.is_alive()
    finally:
        watcher.stop()
        watcher.join(30)
        gc.unfreeze()   # the watcher sets its heap aside between builds; not this test process's
        if watcher.memory is not None:
            watcher.memory.forget()
    assert not watcher.is_alive()
    full = build(FolderSource(corpus), tmp_path / "full", IRIS, workers=1, full=True)
    assert nquads(store) == nquads(full.store_path.parent.parent)


def test_a_folder_read_by_a_given_listing(tmp_path):
    """A watcher hands the build the look at the folder that found the change
    (``folder_listing``): the build reads exactly those files, as it would have listed them."""
    from mg_rdf.source import folder_listing

    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    (corpus / "audits").mkdir()
    (corpus / "audits" / "org-edri.md").write_text("# not an audit yet\n")
    listing = folder_listing(corpus)
    assert list(listing) == [f.path for root in ("entities", "audits") for f in FolderSource(corpus).files(root)]
    late = corpus / "entities/organizations/org-late.md"
    late.write_text((corpus / "entities/organizations/org-edri.md").read_text().replace("id: org-edri", "id: org-late"))
    given = FolderSource(corpus, listing=listing)
    seen = [f.path for f in given.entity_files()]
    assert "entities/organizations/org-late.md" not in seen, "a file written after the look waits for the next one"
    assert [f.path for f in given.audit_files()] == ["audits/org-edri.md"]
    assert "entities/organizations/org-late.md" in [f.path for f in FolderSource(corpus).entity_files()]
    assert ("entities/organizations/org-late.md" in folder_listing(corpus)
            and folder_listing(corpus) != listing), "the next look sees it (and differs: a build follows)"


@pytest.mark.corpus
def test_audits_read_before_the_index_give_what_the_index_gives(corpus_dir, tmp_path, monkeypatch):
    """A full build starts its audit pass before the entities are parsed, with ids and blobs
    predicted from the layout (audit_cache.PendingAudits.early). The store and the report must
    be those of a pass given the real index: when the layout predicts right, and when an
    audited entity's file name is not its id (the early pass is then thrown away and redone)."""
    from mg_rdf import analysis

    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir / "entities" / "organizations", corpus / "entities" / "organizations")
    (corpus / "audits").mkdir()
    ids = {p.stem for p in (corpus / "entities").glob("*/*.md")}
    for audit in sorted((corpus_dir / "audits").glob("*.md")):
        if audit.stem in ids:
            shutil.copy(audit, corpus / "audits" / audit.name)
    redone: list[str] = []
    real_pass = analysis.audit_pass

    def counted_pass(source, index, iris, previous=None):
        redone.append(source.provenance.location)
        return real_pass(source, index, iris, previous)

    monkeypatch.setattr(analysis, "audit_pass", counted_pass)

    def compare(label: str) -> None:
        early = build(FolderSource(corpus), tmp_path / f"early-{label}", IRIS, workers=1)
        with monkeypatch.context() as m:
            m.setattr(analysis.PendingAudits, "early", classmethod(lambda cls, source, iris: None))
            late = build(FolderSource(corpus), tmp_path / f"late-{label}", IRIS, workers=1)
        assert early.analysis.audits.entries and not early.incremental and not late.incremental
        assert nquads(tmp_path / f"early-{label}") == nquads(tmp_path / f"late-{label}"), label
        assert problems(early) == problems(late), label

    compare("predicted")
    assert redone == [], "the layout predicted every id: the early pass is kept"
    audited = sorted(p.stem for p in (corpus / "audits").glob("*.md"))[0]
    (corpus / "entities" / "organizations" / f"{audited}.md").rename(
        corpus / "entities" / "organizations" / f"{audited}-moved.md")
    compare("mispredicted")
    assert len(redone) == 1, "the id the layout got wrong makes the early pass be redone"
