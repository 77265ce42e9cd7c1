"""The build's processes run without Python's cyclic collector (workers.py), and give it back:
a build turns it off for its own work only, and a streamed worker frees each chunk's cycles."""

from __future__ import annotations

import gc
import weakref

import pytest

from conftest import ROOT
from mg_rdf import build as build_module, stream
from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.workers import collect_chunk, without_cyclic_collection


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_collector_is_off_inside_and_back_after_even_on_error():
    seen = []

    @without_cyclic_collection
    def work(fail: bool) -> None:
        seen.append(gc.isenabled())
        if fail:
            raise RuntimeError("boom")

    assert gc.isenabled()
    work(False)
    with pytest.raises(RuntimeError):
        work(True)
    assert seen == [False, False]
    assert gc.isenabled()


def test_nested_pauses_leave_it_off_until_the_outer_one_ends():
    inner = without_cyclic_collection(lambda: gc.isenabled())
    outer = without_cyclic_collection(lambda: (inner(), gc.isenabled()))
    assert outer() == (False, False)
    assert gc.isenabled()


def test_a_collector_left_off_by_the_caller_stays_off():
    gc.disable()
    try:
        without_cyclic_collection(lambda: None)()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_chunk_s_cycles_are_freed_while_the_collector_is_off():
    gc.disable()
    try:
        gone = _cycle()
        assert gone() is not None   # reference counting alone cannot free a cycle
        collect_chunk()
        assert gone() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("streamed", [False, True])
def test_a_build_runs_without_the_collector_and_gives_it_back(tmp_path, iris, monkeypatch, streamed):
    seen = []
    if streamed:
        real = stream.analyse_and_load

        def spy(*args, **kwargs):
            seen.append(gc.isenabled())
            return real(*args, **kwargs)

        monkeypatch.setattr(stream, "analyse_and_load", spy)
    else:
        real = build_module.analyse

        def spy(*args, **kwargs):
            seen.append(gc.isenabled())
            return real(*args, **kwargs)

        monkeypatch.setattr(build_module, "analyse", spy)
    build(FolderSource(ROOT, repository=""), tmp_path / "store", iris, stream=streamed, full=True)
    assert seen == [False]
    assert gc.isenabled()
