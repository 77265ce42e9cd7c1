"""`mg-rdf serve` runs with jemalloc when it is installed (Debian's libjemalloc2): pyoxigraph's
query evaluation spends much of its time in malloc, and jemalloc's is cheaper (DESIGN.md).

Without libjemalloc2 the test skips, unless MG_RDF_REQUIRE_JEMALLOC=1 (CI, whose .ci/run
installs it)."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import pytest
from live_server import start_server


def children(pid: int) -> list[int]:
    return [int(c) for t in os.listdir(f"/proc/{pid}/task")
            for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]


def uses_jemalloc(pid: int) -> bool:
    return "libjemalloc" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture()
def jemalloc_installed() -> None:
    if ctypes.util.find_library("jemalloc"):
        return
    message = "needs libjemalloc2 (apt-get install libjemalloc2); .ci/run installs it"
    if os.environ.get("MG_RDF_REQUIRE_JEMALLOC") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_serve_preloads_jemalloc_in_the_same_process_and_its_serving_processes(jemalloc_installed, sample_build,
                                                                               tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--processes", "2", log_dir=tmp_path)
    try:
        serving = children(s.process.pid)
        assert serving, "the supervisor has serving processes"
        assert uses_jemalloc(s.process.pid), "the process started is the supervisor, now with jemalloc"
        assert all(uses_jemalloc(p) for p in serving)
    finally:
        s.stop()


def test_mg_rdf_jemalloc_0_keeps_the_c_library_malloc(jemalloc_installed, sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--processes", "2", log_dir=tmp_path,
                     env={"MG_RDF_JEMALLOC": "0"})
    try:
        assert not uses_jemalloc(s.process.pid)
        assert not any(uses_jemalloc(p) for p in children(s.process.pid))
    finally:
        s.stop()
