"""The streaming full build (stream.py) gives the same store and the same problems as the
in-memory build, on the real corpus, on a multiplied one cut into small chunks, and on a
corpus whose layout misleads the workers' predictions; a failing worker leaves the
previous store serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyoxigraph import Store

from conftest import HEAD_COMMIT, ROOT, make_corpus
from mg_rdf import manifest, stream
from mg_rdf.build import BuildRefused, build
from mg_rdf.dataset import stored_attribution
from mg_rdf.dump import dump_bytes
from mg_rdf.source import FolderSource, GitSource
from mg_rdf.store import StoreWriter, current_build
from mg_rdf.vocab import DataIris

sys.path.insert(0, str(ROOT / "benchmarks"))
from multiply_corpus import multiply  # noqa: E402


def _both(corpus: Path, tmp: Path, iris: DataIris, commit: str | None = None, source=None):
    """(streamed, in-memory) builds: each with its canonical N-Quads dump and manifest."""
    out = []
    for streamed in (True, False):
        src = source() if source is not None else FolderSource(corpus, commit=commit)
        r = build(src, tmp / f"store-{streamed}", iris, stream=streamed, full=True)
        assert r.incremental is False
        s = Store.read_only(str(r.store_path))
        nq = dump_bytes(s, "nq", iris, stored_attribution(s, iris))
        entries = manifest.read(manifest.manifest_path(r.store_path), manifest.fingerprint(iris, r.analysis.source.provenance))
        out.append((r, nq, entries))
        del s
    return out


def _record_writes(monkeypatch) -> list[int]:
    """The number of writes each database had when closed, in order (one bulk load: no compaction)."""
    seen: list[int] = []
    close = StoreWriter.close

    def recording(self, optimize: bool = True) -> None:
        if self.store is not None:
            seen.append(self.writes)
        close(self, optimize)

    monkeypatch.setattr(StoreWriter, "close", recording)
    return seen


def _same(streamed, in_memory) -> None:
    (rs, nq_s, man_s), (rm, nq_m, man_m) = streamed, in_memory
    assert rs.analysis.seconds.get("stream") is not None and rm.analysis.seconds.get("stream") is None
    assert rs.triples == rm.triples
    if nq_s != nq_m:
        a, b = set(nq_s.split(b"\n")), set(nq_m.split(b"\n"))
        pytest.fail(f"dumps differ: only streamed {sorted(a - b)[:5]}, only in memory {sorted(b - a)[:5]}")
    assert rs.analysis.sorted_problems() == rm.analysis.sorted_problems()
    assert rs.entities_by_type == rm.entities_by_type
    drop_stat = lambda m: {p: {k: v for k, v in e.items() if k != "stat"} for p, e in m.items()}  # noqa: E731
    assert drop_stat(man_s) == drop_stat(man_m)


def test_streamed_build_of_the_real_corpus_is_the_in_memory_build(corpus_dir, tmp_path, iris, monkeypatch):
    writes = _record_writes(monkeypatch)
    streamed, in_memory = _both(corpus_dir, tmp_path, iris, HEAD_COMMIT)
    _same(streamed, in_memory)
    assert streamed[0].analysis.violations > 0 and streamed[0].triples > 200_000
    # the streamed database came from one bulk load (audits and the build's description
    # included), so it was not compacted; in memory the audits are loaded beside the
    # entities, then the build's description: three writes, then a compaction
    assert writes == [1, 3]


def test_streamed_build_of_a_git_source(corpus_dir, tmp_path, iris, monkeypatch):
    """A git source is read through one `git cat-file --batch` while the workers run. With
    3x the corpus its requests (41 bytes a file) outgrow a pipe's buffer, so they are still
    being written when the first chunk goes out: the workers must be forked before, or their
    copy of the pipe keeps git waiting for the end of its input, and the build for git."""
    repo = tmp_path / "repo"
    multiply(corpus_dir, repo, 3)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x3"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env, capture_output=True)
    monkeypatch.setattr(stream, "CHUNK_FILES", 300)
    streamed, in_memory = _both(repo, tmp_path, iris, source=lambda: GitSource(repo, "HEAD"))
    _same(streamed, in_memory)


def test_streamed_build_of_a_multiplied_corpus_in_small_chunks(corpus_dir, tmp_path, iris, monkeypatch):
    corpus = tmp_path / "x3"
    multiply(corpus_dir, corpus, 3)
    # chunks that cut across folders, so most references point into other chunks
    monkeypatch.setattr(stream, "CHUNK_FILES", 97)
    writes = _record_writes(monkeypatch)
    streamed, in_memory = _both(corpus, tmp_path, iris)
    _same(streamed, in_memory)
    assert len(streamed[0].analysis.index.by_id) == 3 * 828
    assert writes == [1, 2]   # no audits here: in memory, the entities then the build's description


def _fm(eid: str, etype: str, extra: str = "") -> str:
    return (f"---\nid: {eid}\ntype: {etype}\nname: {eid}\nstatus: active\nconfidence: high\ntags: [t]\n"
            f"created: 2026-01-01\nlast_updated: 2026-01-01\nsources: []\n{extra}---\n\n# {eid}\n")


def test_wrong_predictions_are_validated_again(tmp_path, iris, monkeypatch):
    """Files whose name, folder or id mislead the workers' listing (they type referenced ids
    by file name and folder): the entities that referred to them are validated again."""
    files = {
        # a person filed with the organisations: the listing calls it an organization
        "entities/organizations/person-misfiled.md": _fm("person-misfiled", "person"),
        # its file name says org-renamed, its id says org-real
        "entities/organizations/org-renamed.md": _fm("org-real", "organization"),
        # two files with one id: the first path wins, the second is not loaded
        "entities/organizations/org-a-dup.md": _fm("org-dup", "organization", "related_orgs: [org-real]\n"),
        "entities/organizations/org-dup.md": _fm("org-dup", "organization", "website: https://example.org/\n"),
        "entities/campaigns/camp-one.md": _fm("camp-one", "campaign",
                                              "lead_orgs: [person-misfiled, org-real, org-renamed, org-gone]\n"),
        "entities/events/event-one.md": _fm("event-one", "event", "campaign: camp-one\n"),
        "entities/organizations/org-broken.md": "---\nid: [unclosed\n---\n",
    }
    corpus = make_corpus(tmp_path / "c", files)
    monkeypatch.setattr(stream, "CHUNK_FILES", 2)
    writes = _record_writes(monkeypatch)
    streamed, in_memory = _both(corpus, tmp_path, iris)
    _same(streamed, in_memory)
    assert streamed[0].analysis.seconds["rechecked"] >= 2   # camp-one, and the chunks holding org-dup
    assert streamed[0].analysis.seconds["regraphed"] >= 2   # camp-one (org-real, org-renamed), org-dup
    assert writes[0] > 1   # graphs rewritten after the load: the database is compacted
    rules = {p.rule for p in streamed[0].analysis.problems}
    assert {"duplicate-id", "filename-id", "reference-type", "dangling-reference"} <= rules


def test_an_incremental_build_after_a_streamed_one_equals_a_full_build(corpus_dir, tmp_path, iris):
    corpus = tmp_path / "x1"
    multiply(corpus_dir, corpus, 1)
    store = tmp_path / "store"
    first = build(FolderSource(corpus), store, iris, stream=True)
    assert first.analysis.seconds.get("stream") is not None
    edited = sorted((corpus / "entities" / "organizations").glob("*.md"))[3]
    edited.write_text(edited.read_text().replace("\nname: ", "\nname: Edited ", 1))
    os.utime(edited, ns=(1, 1))   # a stat the previous build never saw
    inc = build(FolderSource(corpus), store, iris)
    assert inc.incremental and inc.rebuilt < 50
    full = build(FolderSource(corpus), tmp_path / "store-full", iris, full=True)   # 828 files: in memory
    assert full.analysis.seconds.get("stream") is None

    def dump(path: Path) -> bytes:
        s = Store.read_only(str(path))
        return dump_bytes(s, "nq", iris, stored_attribution(s, iris))

    assert dump(inc.store_path) == dump(full.store_path)
    assert inc.analysis.sorted_problems() == full.analysis.sorted_problems()


def _explode(*args, **kwargs):
    raise RuntimeError("a worker failed")


def test_a_failing_worker_leaves_the_previous_store_serving(tmp_path, iris, monkeypatch):
    corpus = make_corpus(tmp_path / "c", {"entities/organizations/org-a.md": _fm("org-a", "organization")})
    store = tmp_path / "store"
    before = build(FolderSource(corpus), store, iris).store_path
    monkeypatch.setattr(stream, "map_entity", _explode)   # the forked workers inherit it
    with pytest.raises(RuntimeError, match="a worker failed"):
        build(FolderSource(corpus), store, iris, stream=True)
    assert current_build(store) == before
    assert len(Store.read_only(str(before))) > 0


def test_only_a_large_corpus_streams_by_default(tmp_path, monkeypatch):
    files = {f"entities/organizations/org-{i}.md": _fm(f"org-{i}", "organization") for i in range(5)}
    corpus = make_corpus(tmp_path / "c", files)
    assert not stream.worth_streaming(FolderSource(corpus))
    monkeypatch.setattr(stream, "STREAM_FROM", 5)
    assert stream.worth_streaming(FolderSource(corpus))
    r = build(FolderSource(corpus), tmp_path / "store", DataIris())
    assert r.analysis.seconds.get("stream") is not None and len(r.analysis.index.by_id) == 5


def test_a_strict_streamed_build_with_problems_is_refused_and_the_previous_store_stays(tmp_path, iris):
    """The build's description is made inside the one bulk load, after the last chunk: a
    refusal there (``--strict``) ends the load, and nothing of it is swapped in."""
    corpus = make_corpus(tmp_path / "c", {"entities/organizations/org-a.md": _fm("org-a", "organization")})
    store = tmp_path / "store"
    before = build(FolderSource(corpus), store, iris).store_path
    (corpus / "entities/campaigns").mkdir()
    (corpus / "entities/campaigns/camp-b.md").write_text(_fm("camp-b", "campaign", "lead_orgs: [org-gone]\n"))
    with pytest.raises(BuildRefused) as refused:
        build(FolderSource(corpus), store, iris, stream=True, strict=True)
    assert "dangling-reference" in {p.rule for p in refused.value.analysis.problems}
    assert current_build(store) == before
    assert not list((store / "builds").glob(".tmp-*"))
