"""Shared fixtures: where the real corpus is, and builds of it made once per session.

Tests that need the real corpus (../shared, beside the project) skip with a
reason when it is absent; CI sets MG_RDF_REQUIRE_SHARED=1, which turns such a
skip into a failure so the real-corpus tests cannot silently stop running.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mg_rdf.build import analyse, build
from mg_rdf.source import FolderSource, GitSource
from mg_rdf.vocab import DataIris

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MG_RDF_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus" / "movement-graph"
BUNDLE = SHARED / "corpus" / "movement-graph.bundle"
HEAD_COMMIT = "99e43d5b9283a4724ab3b3c899ed61c87690ac0f"
V1_COMMIT = "3cc1a36c1f6ed343702c7c1167210cffe8517c6f"
CHROMIUM = Path("/usr/bin/chromium")


def require(path: Path, why: str) -> None:
    """Skip (or, in CI, fail) when a resource beside the project is missing."""
    if path.exists():
        return
    message = f"needs {path} ({why}); .ci/run provides it"
    if os.environ.get("MG_RDF_REQUIRE_SHARED") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    require(CORPUS, "the real Movement Graph corpus at commit 99e43d5")
    return CORPUS


@pytest.fixture(scope="session")
def bundle() -> Path:
    require(BUNDLE, "the Movement Graph history as a git bundle")
    return BUNDLE


@pytest.fixture(scope="session")
def iris() -> DataIris:
    return DataIris()


@pytest.fixture(scope="session")
def head_analysis(corpus_dir: Path, iris: DataIris):
    """mg-rdf's reading of the corpus at HEAD, with SHACL."""
    return analyse(FolderSource(corpus_dir, commit=HEAD_COMMIT), iris)


@pytest.fixture(scope="session")
def head_build(corpus_dir: Path, iris: DataIris, tmp_path_factory: pytest.TempPathFactory):
    """A store built from the corpus at HEAD (built once per session)."""
    path = tmp_path_factory.mktemp("store-head")
    return build(FolderSource(corpus_dir, commit=HEAD_COMMIT), path, iris)


@pytest.fixture(scope="session")
def head_store(head_build):
    from pyoxigraph import Store

    return Store.read_only(str(head_build.store_path))


@pytest.fixture(scope="session")
def v1_build(bundle: Path, iris: DataIris, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("store-v1")
    return build(GitSource(bundle, "v1.0.0"), path, iris)


@pytest.fixture(scope="session")
def sample_build(iris: DataIris, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("store-sample")
    return build(FolderSource(ROOT, repository=""), path, iris)


def make_corpus(root: Path, files: dict[str, str | bytes]) -> Path:
    """A small corpus folder from {relative path: content}."""
    if root.exists():
        shutil.rmtree(root)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "entities").mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def sample_server(sample_build, tmp_path_factory):
    """`mg-rdf serve` on the sample corpus store, on a free loopback port."""
    from live_server import start_server

    store = sample_build.store_path.parent.parent
    server = start_server(store, log_dir=tmp_path_factory.mktemp("logs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def head_server(head_build, tmp_path_factory):
    """`mg-rdf serve` on the real corpus at HEAD."""
    from live_server import start_server

    store = head_build.store_path.parent.parent
    server = start_server(store, log_dir=tmp_path_factory.mktemp("logs"))
    yield server
    server.stop()


@pytest.fixture()
def sample_app(sample_build):
    """The Flask app over the sample store, for the test client."""
    from mg_rdf.web import create_app

    app = create_app({"STORE_PATH": sample_build.store_path.parent.parent, "TESTING": True})
    return app
