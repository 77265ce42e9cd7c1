"""The entity files a build read, kept as packs in the store (source_packs.py): read back byte
for byte, shared between builds, collected with the builds that read them, and never more than
a few files per build."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mg_rdf import source_packs
from mg_rdf.build import blobs_of_build, build
from mg_rdf.source import FolderSource
from mg_rdf.source_packs import Shelf, collect, loose_path, packs_dir, write_pack
from mg_rdf.store import current_build
from mg_rdf.vocab import DataIris

ROOT = Path(__file__).resolve().parents[1]


def blob_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def files(*texts: str) -> list[tuple[str, bytes]]:
    return [(blob_of(t.encode()), t.encode()) for t in texts]


def packs(store: Path) -> list[str]:
    return sorted(p.name for p in packs_dir(store).iterdir()) if packs_dir(store).exists() else []


def test_a_pack_gives_back_each_file_byte_for_byte(tmp_path):
    kept = files("first file\n", "", "third — ünïcode\n", "first file\n")
    assert write_pack(tmp_path, kept + [("../../etc/passwd", b"no")]) == 3, "duplicates and non-blob names skipped"
    assert [p.rsplit(".", 1)[1] for p in packs(tmp_path)] == ["idx", "pack"]
    shelf = Shelf(tmp_path)
    for blob, data in kept:
        assert shelf.read(blob) == data
    assert shelf.read("0" * 40) is None and shelf.read("../../etc/passwd") is None


def test_a_pack_written_after_the_first_look_up_is_found(tmp_path):
    shelf = Shelf(tmp_path)
    (a,), (b,) = files("a\n"), files("b\n")
    write_pack(tmp_path, [a])
    assert shelf.read(a[0]) == a[1]
    write_pack(tmp_path, [b])
    assert shelf.read(b[0]) == b[1]


def test_a_collected_pack_is_looked_up_again_in_the_others(tmp_path):
    (a,), (b,) = files("a\n"), files("b\n")
    write_pack(tmp_path, [a])
    shelf = Shelf(tmp_path)
    assert shelf.read(a[0]) == a[1]
    write_pack(tmp_path, [a, b])   # a second pack holding a too
    first = sorted(packs_dir(tmp_path).glob("*.idx"), key=lambda p: p.stat().st_mtime_ns)[0]
    collect(tmp_path, {b[0]})      # a's first pack has nothing wanted: it goes
    assert not first.exists()
    assert shelf.read(a[0]) == a[1], "found in the pack that stays"


def test_collect_keeps_a_pack_with_any_wanted_file_and_removes_loose_files_unwanted(tmp_path):
    (a, b), (c,) = files("a\n", "b\n"), files("c\n")
    write_pack(tmp_path, [a, b])
    write_pack(tmp_path, [c])
    loose = loose_path(tmp_path, blob_of(b"old\n"))
    loose.parent.mkdir(parents=True)
    loose.write_bytes(b"old\n")
    assert Shelf(tmp_path).read(blob_of(b"old\n")) == b"old\n", "a loose file of an older store is still read"
    collect(tmp_path, {a[0]})
    shelf = Shelf(tmp_path)
    assert shelf.read(b[0]) == b[1], "kept whole with a"
    assert shelf.read(c[0]) is None and not loose.exists()
    assert len(packs(tmp_path)) == 2


def test_a_half_written_pack_is_not_read_and_goes_at_the_next_collection(tmp_path):
    (a,) = files("a\n")
    write_pack(tmp_path, [a])
    (idx,) = packs_dir(tmp_path).glob("*.idx")
    idx.rename(idx.with_name(f".{idx.name}.tmp"))   # as if the build died writing the index
    assert Shelf(tmp_path).read(a[0]) is None
    collect(tmp_path, {a[0]})
    assert not list(packs_dir(tmp_path).iterdir()), "the pack without its index went too"


def test_builds_keep_their_files_in_a_few_packs_and_share_unchanged_ones(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    first = build(FolderSource(corpus), store, DataIris(), workers=1)
    assert len(packs(store)) == 2, "one pack and its index for the whole build"
    shelf = Shelf(store)
    for path in sorted((corpus / "entities").glob("*/*.md")):
        assert shelf.read(blob_of(path.read_bytes())) == path.read_bytes(), path.name
    # an edit: the next build writes a pack of that one file, and reads the rest where they are
    edited = sorted((corpus / "entities" / "campaigns").glob("*.md"))[0]
    edited.write_bytes(edited.read_bytes() + b"\nOne more line.\n")
    second = build(FolderSource(corpus), store, DataIris(), workers=1)
    assert second.store_path != first.store_path and len(packs(store)) == 4
    new = [p for p in packs_dir(store).glob("*.idx") if edited.read_bytes() in
           (packs_dir(store) / (p.stem + ".pack")).read_bytes()]
    assert len(new) == 1 and (packs_dir(store) / (new[0].stem + ".pack")).read_bytes() == edited.read_bytes()
    for kept in (first.store_path, second.store_path):
        for blob in blobs_of_build(kept):
            assert Shelf(store).read(blob) is not None
    assert current_build(store) == second.store_path
    # files nobody reads any more go with the builds that read them
    for _ in range(2):
        edited.write_bytes(edited.read_bytes() + b"\nAnd another.\n")
        build(FolderSource(corpus), store, DataIris(), workers=1)
    assert len(packs(store)) == 6, "the first edit's pack went with the builds that read it"
    assert source_packs.Shelf(store).read(blob_of(edited.read_bytes())) == edited.read_bytes()


def test_a_streamed_build_keeps_every_file_in_one_pack_a_chunk(tmp_path, monkeypatch):
    from mg_rdf import stream

    monkeypatch.setattr(stream, "CHUNK_FILES", 10)
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, DataIris(), workers=2, stream=True)
    originals = sorted((corpus / "entities").glob("*/*.md"))
    assert len(packs(store)) == 2 * -(-len(originals) // 10)
    shelf = Shelf(store)
    for path in originals:
        assert shelf.read(blob_of(path.read_bytes())) == path.read_bytes(), path.name
