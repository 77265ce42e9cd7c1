"""Several pins in one store: the build, its atomicity, renamed ids, pinned pages and SPARQL.

The small history of tests/sample_history.py runs everywhere (three pins and a tag
that cannot build); the real history (the bundle, tags v1.0.0 and v2.0.0 and HEAD)
skips without ../shared. Expected counts come from git file names, not from mg-rdf.
"""

from __future__ import annotations

import html
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rdflib
import requests
from click.testing import CliRunner
from pyoxigraph import NamedNode, Store

from mg_rdf import pin_build, pins
from mg_rdf.build import blobs_of_build, build
from mg_rdf.cli import main
from mg_rdf.dump import dump_bytes
from mg_rdf.pin_build import build_pins
from mg_rdf.problems import MgRdfError
from mg_rdf.source import GitSource
from mg_rdf.source_packs import Shelf
from mg_rdf.store import current_build
from mg_rdf.vocab import DCT, MG, OWL, DataIris
from mg_rdf.web import create_app
from sample_history import RENAMED, git, ids_at, make_history

IRIS = DataIris()
BANBS = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"
COUNT_ENTITIES = "SELECT (COUNT(DISTINCT ?e) AS ?n) WHERE { GRAPH ?g { ?g mg:describes ?e } }"


def page_text(body: str) -> str:
    """What a reader sees: tags dropped, entities decoded, white space collapsed (none before , : ;)."""
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))
    return re.sub(r" ([,:;])", r"\1", text)


def dataset_commit(directory: Path) -> str:
    store = Store.read_only(str(directory))
    q = f"SELECT ?c WHERE {{ GRAPH <{IRIS.dataset_graph}> {{ <{IRIS.dataset}> mg:corpusCommit ?c }} }}"
    return next(iter(store.query(q, prefixes={"mg": MG})))["c"].value


def canonical(directory: Path) -> bytes:
    data = dump_bytes(Store.read_only(str(directory)), "nq", IRIS, "attribution")
    return b"\n".join(line for line in data.splitlines() if not line.startswith(b"#"))


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return make_history(tmp_path_factory.mktemp("history") / "repo")


@pytest.fixture(scope="module")
def sample_pins(history, tmp_path_factory):
    store = tmp_path_factory.mktemp("pins") / "store"
    return build_pins(history, ["v1", "v2", "v3"], store, IRIS, workers=1)


@pytest.fixture(scope="module")
def client(sample_pins):
    app = create_app({"STORE_PATH": sample_pins.store_path.parent.parent, "TESTING": True})
    return app.test_client()


# -- the build -------------------------------------------------------------------------------------

def test_each_pin_is_its_own_database_beside_the_current_build(history, sample_pins):
    build_dir = sample_pins.store_path
    assert current_build(build_dir.parent.parent) == build_dir
    index = pins.read_index(build_dir)
    assert [p.name for p in index.pins] == ["v1", "v2", "v3"] and index.current.name == "v3"
    for p in index.pins:
        directory = index.directory(p)
        assert directory == (build_dir if p.current else pins.pins_dir(build_dir) / p.key)
        assert dataset_commit(directory) == git(history, "rev-parse", p.name).strip()
        assert p.entities == len(ids_at(history, p.name))
        store = Store.read_only(str(directory))
        found = {r["e"].value for r in store.query("SELECT DISTINCT ?e WHERE { GRAPH ?g { ?g mg:describes ?e } }",
                                                     prefixes={"mg": MG})}
        assert found == {IRIS.entity(i) for i in ids_at(history, p.name)}, f"{p.name} holds only its own entities"
    assert [(d.old, d.new) for d in index.diffs] == [("v1", "v2"), ("v2", "v3")]
    # modified: org-edri's file, and four files whose body linked to an id that v2 renamed or deleted
    assert index.diffs[0].counts == {"renamed": 2, "removed": 1, "added": 1, "modified": 5}


def test_renamed_ids_are_stated_in_the_current_pins_renames_graph(sample_pins):
    store = Store.read_only(str(sample_pins.store_path))
    g = NamedNode(IRIS.base + "graph/renames")
    for old, new in RENAMED.items():
        for p in (OWL + "sameAs", DCT + "isReplacedBy"):
            pattern = (NamedNode(IRIS.entity(old)), NamedNode(p), NamedNode(IRIS.entity(new)), g)
            assert list(store.quads_for_pattern(*pattern)), (old, p)
    assert sample_pins.renames == RENAMED


def test_rebuilding_the_same_pins_copies_them_and_gives_the_same_graphs(history, sample_pins, tmp_path):
    store = tmp_path / "store"
    first = build_pins(history, ["v1", "v2", "v3"], store, IRIS, workers=1)
    again = build_pins(history, ["v1", "v2", "v3"], store, IRIS, workers=1)
    assert all(load.previous is not None and load.rebuilt == 0 for load in again.loads.values())
    assert [d.counts() for d in again.diffs] == [d.counts() for d in first.diffs]
    for a, b in zip(pins.read_index(first.store_path).pins, pins.read_index(again.store_path).pins):
        assert canonical(pins.read_index(first.store_path).directory(a)) == \
            canonical(pins.read_index(again.store_path).directory(b)), a.name
    # a single --rev after them starts from the pin of the same commit, and equals a full build
    one = build(GitSource(history, "v1"), store, IRIS, workers=1)
    assert one.incremental and one.rebuilt == 0
    full = build(GitSource(history, "v1"), tmp_path / "full", IRIS, workers=1, full=True)
    assert canonical(one.store_path) == canonical(full.store_path)
    # old builds go with their pins; every kept pin's source files are still there
    builds = store / "builds"
    assert sorted(p.name for p in builds.iterdir() if "." not in p.name) == \
        sorted([again.store_path.name, one.store_path.name])
    assert not (builds / (first.store_path.name + ".pins")).exists()
    for kept in (again.store_path, one.store_path):
        for blob in blobs_of_build(kept):
            assert Shelf(store).read(blob) is not None, blob


def test_current_chooses_the_pin_served(history, tmp_path):
    r = CliRunner().invoke(main, ["build", str(history), "--rev", "v1", "--rev", "v2", "--rev", "v3",
                                  "--current", "v2", "--store", str(tmp_path / "s"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "pin v2 (current)" in r.output and "v1 → v2: 1 added, 1 removed, 2 renamed, 5 modified" in r.output
    index = pins.read_index(current_build(tmp_path / "s"))
    assert index.current.name == "v2" and [p.name for p in index.pins] == ["v1", "v2", "v3"]
    for pin, tag in ((None, "v2"), ("v1", "v1"), ("v3", "v3")):
        r = CliRunner().invoke(main, ["query", "--store", str(tmp_path / "s"), "--format", "csv", COUNT_ENTITIES,
                                      *(["--pin", pin] if pin else [])])
        assert r.exit_code == 0 and r.output.split()[-1] == str(len(ids_at(history, tag))), (pin, r.output)
    for args, message in ((["--rev", "v1", "--rev", "v1"], "given twice"),
                          (["--rev", "v1", "--rev", "v2", "--current", "v9"], "not one of the --rev"),
                          (["--rev", "v1", "--rev", "nope"], "no commit called 'nope'")):
        r = CliRunner().invoke(main, ["build", str(history), *args, "--store", str(tmp_path / "s")])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output


# -- atomicity ---------------------------------------------------------------------------------------

def test_a_failure_while_building_the_second_pin_leaves_the_previous_store_current(history, tmp_path):
    store = tmp_path / "s"
    before = build_pins(history, ["v1", "v2"], store, IRIS, workers=1).store_path
    with pytest.raises(MgRdfError, match="no entity could be read"):
        build_pins(history, ["v1", "broken", "v3"], store, IRIS, workers=1)   # 'broken' deletes every entity
    assert current_build(store) == before
    assert sorted(p.name for p in (store / "builds").iterdir()) == \
        sorted([before.name, before.name + ".manifest", before.name + ".manifest.blobs", before.name + ".pins"]), \
        "nothing of the failed build is left"
    index = pins.read_index(before)
    assert [p.name for p in index.pins] == ["v1", "v2"]
    assert all(len(Store.read_only(str(index.directory(p)))) > 1000 for p in index.pins)


def test_a_killed_pins_build_never_half_replaces_the_store(history, tmp_path):
    store = tmp_path / "s"
    before = build_pins(history, ["v1", "v2"], store, IRIS, workers=1).store_path
    rng = random.Random(11)
    names = ["v1", "v2"]
    for delay in sorted(rng.uniform(0.5, 6.0) for _ in range(5)):
        proc = subprocess.Popen([sys.executable, "-c", "from mg_rdf.cli import main; main()", "build", str(history),
                                 "--rev", "v2", "--rev", "v3", "--rev", "v1", "--full", "--store", str(store)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = current_build(store)
        index = pins.read_index(now)
        if now != before:   # the build finished before the kill: then it is complete
            names = ["v1", "v2", "v3"]
        assert [p.name for p in index.pins] == names, "a build is current with all its pins or not at all"
        for p in index.pins:
            assert dataset_commit(index.directory(p)) == git(history, "rev-parse", p.name).strip()
        before = now
    assert CliRunner().invoke(main, ["build", str(history), "--rev", "v1", "--rev", "v2",
                                     "--store", str(store)]).exit_code == 0
    assert not list((store / "builds").glob(".tmp-*")), "the next build removes what killed ones left"


# -- the web app ---------------------------------------------------------------------------------------

def test_an_old_id_answers_301_to_its_new_id(client):
    for old, new in RENAMED.items():
        r = client.get(f"/id/{old}")
        assert r.status_code == 301 and r.headers["Location"].endswith(f"/id/{new}")
        r = client.get(f"/page/{old}")
        assert r.status_code == 301 and r.headers["Location"].endswith(f"/page/{new}")
        r = client.get(f"/data/{old}.ttl")
        assert r.status_code == 301 and r.headers["Location"].endswith(f"/data/{new}.ttl")
    assert client.get("/id/person-hamid-khan").status_code == 404, "a deleted id is not a renamed one"
    assert client.get("/page/strat-ban-not-regulate?pin=v1").status_code == 200, "at its own pin the old id lives"


def test_pinned_pages_and_documents_show_the_entity_as_it_was(history, client):
    v1 = git(history, "rev-parse", "v1").strip()
    r = client.get("/id/person-hamid-khan?pin=v1")
    assert r.status_code == 303 and r.headers["Location"].endswith("/page/person-hamid-khan?pin=v1")
    r = client.get("/id/person-hamid-khan?pin=v1", headers={"Accept": "text/turtle"})
    assert r.headers["Location"].endswith("/data/person-hamid-khan.ttl?pin=v1")
    body = client.get("/page/org-edri?pin=v1").get_data(as_text=True)
    text = page_text(body)
    assert "as it was at pin v1" in text and f"at pin {v1[:7]}" in text
    assert "<h1>European Digital Rights (EDRi)</h1>" in body
    assert 'href="/page/camp-access-now-ban-biometric-surveillance-global-2021-ongoing?pin=v1"' in body, \
        "links of a pinned page stay at the pin"
    assert "<h1>Renamed European Digital Rights (EDRi)</h1>" in client.get("/page/org-edri").get_data(as_text=True)
    ttl = client.get("/data/org-edri.ttl?pin=v1").get_data(as_text=True)
    assert v1 in ttl and "brand-new-tag" not in ttl
    md = client.get("/data/org-edri.md?pin=v1").get_data(as_text=True)
    assert "name: European Digital Rights" in md
    assert client.get("/page/org-new-member?pin=v1").status_code == 404
    assert client.get("/page/org-edri?pin=v9").status_code == 404


def test_an_entity_page_says_in_which_pins_it_exists_and_what_changed(client):
    text = page_text(client.get("/page/strat-prohibition-over-regulation").get_data(as_text=True))
    section = text[text.index("Releases The pins"):]
    assert "v1 " in section and "present as strat-ban-not-regulate" in section
    assert "renamed from strat-ban-not-regulate" in section and "identifier +1 −1" in section
    text = page_text(client.get("/page/org-edri").get_data(as_text=True))
    section = text[text.index("Releases The pins"):]
    assert re.search(r"v2 \S+ · 2026-02-01 present modified; 3 triples added, 2 removed "
                     r"label \+1 −1 name \+1 −1 tag \+1 ", section)
    text = page_text(client.get("/page/person-hamid-khan?pin=v1").get_data(as_text=True))
    assert "It is not in the current pin (v3)" in text and "removed" in text


def test_the_releases_page_and_the_diffs(history, client):
    body = client.get("/releases").get_data(as_text=True)
    text = page_text(body)
    for tag in ("v1", "v2", "v3"):
        assert git(history, "rev-parse", "--short=7", tag).strip() in text
    assert "v1 → v2: 1 added, 1 removed, 2 renamed, 5 modified" in text
    assert 'href="/diff/v1/v2"' in body
    r = client.get("/diff/v1/v2")
    assert r.status_code == 200 and "strat-ban-not-regulate" in r.get_data(as_text=True)
    r = client.get("/diff/v1/v2.ttl")
    g = rdflib.Graph().parse(data=r.data, format="turtle")
    assert len(set(g.subjects(rdflib.RDF.type, rdflib.URIRef(MG + "EntityChange")))) == 9
    r = client.get("/diff/v1/v2", headers={"Accept": "application/ld+json"})
    assert r.content_type == "application/ld+json" and r.headers["Vary"] == "Accept"
    assert client.get("/diff/v1/v3").status_code == 404, "only consecutive pins are diffed"
    r = client.get("/pin/v2")
    assert r.status_code == 303 and r.headers["Location"].endswith("/releases#pin-v2")


def test_sparql_queries_one_pin_with_the_pin_parameter(history, sample_pins, tmp_path):
    from live_server import start_server

    server = start_server(sample_pins.store_path.parent.parent, log_dir=tmp_path)
    try:
        def count(**params) -> int:
            r = requests.get(server.url + "/sparql", params={"query": COUNT_ENTITIES, **params},
                             headers={"Accept": "application/sparql-results+json"}, timeout=30)
            assert r.status_code == 200, r.text
            return int(r.json()["results"]["bindings"][0]["n"]["value"])

        assert count() == len(ids_at(history, "v3"))
        for tag in ("v1", "v2", "v3"):
            assert count(pin=tag) == len(ids_at(history, tag)), tag
        short = git(history, "rev-parse", "--short=8", "v1").strip()
        assert count(pin=short) == len(ids_at(history, "v1")), "a commit prefix names a pin"
        r = requests.post(server.url + "/sparql?pin=v2", data=COUNT_ENTITIES,
                          headers={"Content-Type": "application/sparql-query"}, timeout=30)
        assert int(r.json()["results"]["bindings"][0]["n"]["value"]) == len(ids_at(history, "v2"))
        r = requests.get(server.url + "/sparql", params={"query": COUNT_ENTITIES, "pin": "v9"}, timeout=30)
        assert r.status_code == 400 and "no pin called 'v9'" in r.text
        r = requests.get(server.url + "/sparql", params={"pin": "v1"}, headers={"Accept": "text/turtle"}, timeout=30)
        assert r.status_code == 200 and "pin=NAME" in r.text
        assert git(history, "rev-parse", "v1").strip() in r.text, "the description of a pin is that pin's"
    finally:
        server.stop()


# -- the real history ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle_pins(bundle, tmp_path_factory):
    store = tmp_path_factory.mktemp("bundle-pins") / "store"
    return build_pins(bundle, ["v1.0.0", "v2.0.0", "HEAD"], store, IRIS)


def bundle_git(bundle: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(GitSource(bundle, "HEAD").git_dir), *args], check=True,
                          capture_output=True, text=True).stdout


def bundle_ids(bundle: Path, rev: str) -> set[str]:
    names = bundle_git(bundle, "ls-tree", "-r", "--name-only", rev, "--", "entities").split("\n")
    return {Path(n).stem for n in names if n.endswith(".md")}


@pytest.mark.corpus
def test_the_release_tags_build_into_one_store(bundle, bundle_pins):
    index = pins.read_index(bundle_pins.store_path)
    assert [p.name for p in index.pins] == ["v1.0.0", "v2.0.0", "HEAD"] and index.current.name == "HEAD"
    for p in index.pins:
        assert p.commit == bundle_git(bundle, "rev-parse", p.name + "^{commit}").strip()
        assert dataset_commit(index.directory(p)) == p.commit
        assert p.entities == len(bundle_ids(bundle, p.name))
    ids1, ids2 = bundle_ids(bundle, "v1.0.0"), bundle_ids(bundle, "v2.0.0")
    c = index.diffs[0].counts
    assert c["added"] + c["renamed"] == len(ids2 - ids1) and c["removed"] + c["renamed"] == len(ids1 - ids2)


@pytest.mark.corpus
def test_bundle_renamed_ids_answer_301(bundle_pins):
    app = create_app({"STORE_PATH": bundle_pins.store_path.parent.parent, "TESTING": True})
    client = app.test_client()
    for old, new in (("lg-rideshare-drivers-united", "org-rideshare-drivers-united"),        # v1.0.0 -> v2.0.0
                     ("lg-anti-eviction-mapping-project", "org-anti-eviction-mapping-project")):  # v2.0.0 -> HEAD
        r = client.get(f"/id/{old}")
        assert r.status_code == 301 and r.headers["Location"].endswith(f"/id/{new}"), old
        assert bundle_pins.renames[old] == new
    ttl = client.get("/data/org-rideshare-drivers-united.ttl").get_data(as_text=True)
    assert "lg-rideshare-drivers-united" in ttl and "isReplacedBy" in ttl, "the equivalence is in the data"


@pytest.mark.corpus
def test_banbs_at_pin_v1_shows_the_public_sites_counts(bundle_pins):
    """PRODUCT.md: at v1.0.0 (3cc1a36) the public graph site shows 7 declared connections and
    6 direct neighbours for #BanBS; the multi-pin store served with ?pin=v1.0.0 shows the same."""
    app = create_app({"STORE_PATH": bundle_pins.store_path.parent.parent, "TESTING": True})
    client = app.test_client()
    text = page_text(client.get(f"/page/{BANBS}?pin=v1.0.0").get_data(as_text=True))
    assert "7 declared connections" in text and "6 direct neighbours visible" in text
    assert "at pin 3cc1a36" in text and "7 adjacencies" in text
    r = client.get(f"/id/{BANBS}?pin=3cc1a36")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/page/{BANBS}?pin=v1.0.0")


@pytest.mark.corpus
def test_bundle_sparql_pin_parameter(bundle, bundle_pins, tmp_path):
    from live_server import start_server

    server = start_server(bundle_pins.store_path.parent.parent, log_dir=tmp_path)
    try:
        for tag in ("v1.0.0", "v2.0.0", "HEAD"):
            r = requests.get(server.url + "/sparql", params={"query": COUNT_ENTITIES, "pin": tag},
                             headers={"Accept": "application/sparql-results+json"}, timeout=60)
            assert int(r.json()["results"]["bindings"][0]["n"]["value"]) == len(bundle_ids(bundle, tag)), tag
    finally:
        server.stop()


@pytest.mark.corpus
def test_bundle_failure_in_the_second_pin_keeps_the_previous_store(bundle, bundle_pins, tmp_path, monkeypatch):
    """The store of the bundle pins is current; a build whose second pin fails leaves it so."""
    store = bundle_pins.store_path.parent.parent
    before = current_build(store)
    real, calls = pin_build.load_pin, []

    def failing(*args, **kwargs):
        calls.append(args[2].provenance.rev)
        if len(calls) == 2:
            raise MgRdfError("simulated failure while building the second pin")
        return real(*args, **kwargs)

    monkeypatch.setattr(pin_build, "load_pin", failing)
    with pytest.raises(MgRdfError, match="simulated failure"):
        build_pins(bundle, ["v1.0.0", "v2.0.0", "HEAD"], store, IRIS)
    assert calls == ["v1.0.0", "v2.0.0"]
    assert current_build(store) == before
    assert not list((store / "builds").glob(".tmp-*"))
    index = pins.read_index(before)
    assert [p.name for p in index.pins] == ["v1.0.0", "v2.0.0", "HEAD"]
