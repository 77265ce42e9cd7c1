"""The CLI end to end on small corpora written here: build, validate, dump, query, stats,
the atomic swap, and the integrity rules that need the whole corpus."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyoxigraph import Store

from conftest import make_corpus
from mg_rdf.cli import main
from mg_rdf.store import current_build


def entity(eid: str, etype: str, **fields) -> str:
    lines = [f"id: {eid}", f"type: {etype}", f"name: {fields.pop('name', eid.upper())}",
             "status: active", "confidence: high", "tags: [t]", "created: 2026-01-01",
             "last_updated: 2026-01-02", "sources: []"]
    for k, v in fields.items():
        lines.append(f"{k}: {json.dumps(v)}")
    return "---\n" + "\n".join(lines) + f"\n---\n\n# {eid.upper()}\n"


DIR = {"organization": "organizations", "campaign": "campaigns", "event": "events", "person": "persons",
       "voice": "voices", "funder": "funders", "local-group": "local-groups"}


def corpus(tmp_path: Path, *entities: tuple[str, str, dict], extra: dict | None = None) -> Path:
    files = {f"entities/{DIR[t]}/{eid}.md": entity(eid, t, **f) for eid, t, f in entities}
    return make_corpus(tmp_path / "corpus", {**files, **(extra or {})})


def run(*args: str, **kw):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)
    return result


GOOD = [("org-a", "organization", {"related_orgs": ["org-b"]}),
        ("org-b", "organization", {"related_orgs": ["org-a"]}),
        ("camp-c", "campaign", {"lead_orgs": ["org-a"], "events": ["event-e"]}),
        ("event-e", "event", {"campaign": "camp-c", "date": "2021-06-07"})]


def test_build_then_query_and_stats(tmp_path):
    src = corpus(tmp_path, *GOOD)
    r = run("build", str(src), "--store", str(tmp_path / "s"))
    assert r.exit_code == 0, r.output
    assert "4 entities from 4 files" in r.output and "0 violations" in r.output
    r = run("query", "--store", str(tmp_path / "s"), "--format", "csv",
            "SELECT ?c WHERE { <https://w3id.org/movement-graph/id/org-a> mg:leadsCampaign ?c }")
    assert r.output.splitlines() == ["c", "https://w3id.org/movement-graph/id/camp-c"]
    r = run("stats", "--store", str(tmp_path / "s"), "--json")
    stats = json.loads(r.output)
    assert stats["entities"] == 4 and stats["by type"]["Organization"] == 2


def test_base_is_configurable_and_no_localhost_leaks(tmp_path):
    src = corpus(tmp_path, *GOOD)
    run("build", str(src), "--store", str(tmp_path / "s"), "--base", "https://data.example.org/mg/")
    r = run("dump", "--store", str(tmp_path / "s"), "--base", "https://data.example.org/mg/", "--format", "nt",
            str(tmp_path / "d.nt"))
    text = (tmp_path / "d.nt").read_text()
    assert "<https://data.example.org/mg/id/org-a>" in text
    assert "localhost" not in text and "w3id.org/movement-graph/id/" not in text
    r = run("build", str(src), "--store", str(tmp_path / "s2"), "--base", "not-an-iri")
    assert r.exit_code != 0 and "BASE must be an absolute" in r.output


BAD_FILES = {
    "entities/organizations/org-yaml.md": "---\nid: org-yaml\nname: a: b\n---\n",
    "entities/organizations/org-bytes.md": b"---\nid: org-bytes\nname: caf\xe9\n---\n",
    "entities/organizations/org-list.md": "---\n- a\n---\n",
    "entities/organizations/org-bomb.md": "---\na: &a [x, x]\nb: [*a, *a]\nid: org-bomb\n---\n",
    "entities/organizations/org-noname.md": "---\nid: org-noname\ntype: organization\n---\n",
    "entities/organizations/org-typo.md": "---\nid: org-typo\ntype: organisation\nname: T\n---\n",
    "entities/organizations/org-dup.md": "---\nid: org-a\ntype: organization\nname: Dup\n---\n",
    "entities/campaigns/camp-dangling.md": entity("camp-dangling", "campaign", lead_orgs=["org-nowhere"]),
    "entities/campaigns/camp-notype.md": "---\nid: camp-notype\nname: N\n---\n",
}


def test_validate_reports_every_bad_file_and_still_reads_the_rest(tmp_path):
    src = corpus(tmp_path, *GOOD, extra=BAD_FILES)
    r = run("validate", str(src))
    assert r.exit_code == 1
    out = r.output
    assert "Traceback" not in out
    expected = [
        "entities/organizations/org-yaml.md:3 YAML syntax error",
        "entities/organizations/org-bytes.md:3 not UTF-8",
        "entities/organizations/org-list.md:2 frontmatter is a list",
        "YAML aliases (*name) are not allowed",
        "entities/organizations/org-noname.md name: name is required",
        "entities/organizations/org-typo.md:3 type: unknown entity type",
        "entities/organizations/org-dup.md id: duplicate id",
        "entities/organizations/org-dup.md id: file name does not match the id",
        "entities/campaigns/camp-dangling.md:11 lead_orgs[0]: dangling reference: no entity has this id (org-nowhere)",
        "entities/campaigns/camp-notype.md type: missing type; the folder says 'campaign'",
    ]
    for line in expected:
        assert line in out, f"missing: {line}\n{out}"
    # the good entities were read and checked too
    assert "7 entities from 13 files" in out or "entities from 13 files" in out


def test_json_report_lines_carry_path_line_field_value(tmp_path):
    src = corpus(tmp_path, *GOOD, extra={k: v for k, v in BAD_FILES.items() if "dangling" in k})
    r = run("validate", str(src), "--json")
    rows = [json.loads(line) for line in r.output.splitlines()]
    [row] = [x for x in rows if x["rule"] == "dangling-reference"]
    assert row == {"path": "entities/campaigns/camp-dangling.md", "line": 11, "field": "lead_orgs[0]",
                   "message": "dangling reference: no entity has this id", "value": "org-nowhere",
                   "severity": "violation", "rule": "dangling-reference"}


def test_shacl_report_is_written_as_turtle_on_request(tmp_path):
    src = corpus(tmp_path, ("org-a", "organization", {"status": "dormant"}))
    r = run("validate", str(src), "--shacl-report", str(tmp_path / "report.ttl"))
    assert r.exit_code == 1 and "status is required and must be one of" in r.output
    from rdflib import Graph
    g = Graph().parse(tmp_path / "report.ttl")
    assert any("ValidationReport" in str(o) for o in g.objects())


def test_integrity_rules_across_files(tmp_path):
    src = corpus(tmp_path,
                 ("org-a", "organization", {"related_orgs": ["org-b"], "funders": ["fund-f"]}),
                 ("org-b", "organization", {}),                       # does not list org-a back
                 ("lg-l", "local-group", {}),
                 ("camp-c", "campaign", {"lead_orgs": ["lg-l"], "events": ["event-e"]}),
                 ("event-e", "event", {}),                            # does not name camp-c
                 ("fund-f", "funder", {"funded_orgs": ["org-b"]}),   # non-canonical side populated
                 extra={"entities/persons/org-misplaced.md": entity("org-misplaced", "organization")})
    r = run("validate", str(src), "--json")
    rows = [json.loads(line) for line in r.output.splitlines()]
    got = {(x["rule"], x["path"].split("/")[-1], x["value"]) for x in rows}
    assert ("symmetric-pair", "org-b.md", "org-a") in got
    assert ("reference-type", "camp-c.md", "lg-l") in got
    assert ("symmetric-pair", "event-e.md", "camp-c") in got
    assert ("canonical-direction", "fund-f.md", "org-b") in got
    assert ("id-directory", "org-misplaced.md", "org-misplaced") in got


def test_strict_build_is_refused_and_the_previous_store_keeps_serving(tmp_path):
    good = corpus(tmp_path, *GOOD)
    store = tmp_path / "s"
    assert run("build", str(good), "--store", str(store)).exit_code == 0
    before = current_build(store)
    bad = make_corpus(tmp_path / "bad", {"entities/campaigns/camp-x.md": entity("camp-x", "campaign",
                                                                                lead_orgs=["org-none"])})
    r = run("build", str(bad), "--store", str(store), "--strict")
    assert r.exit_code != 0 and "refused under --strict" in r.output
    assert current_build(store) == before
    assert len(Store.read_only(str(before))) > 0
    # without --strict the same corpus builds, its violation reported
    r = run("build", str(bad), "--store", str(store))
    assert r.exit_code == 0 and "dangling reference" in r.output and current_build(store) != before


def test_an_unwritable_store_path_is_a_clear_error(tmp_path):
    good = corpus(tmp_path, *GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("build", str(good), "--store", str(blocker / "store"))
    assert r.exit_code != 0 and "not writable" in r.output and "Traceback" not in r.output


def test_dumps_are_deterministic_across_builds(tmp_path):
    src = corpus(tmp_path, *GOOD)
    outputs = []
    for n in (1, 2):
        store = tmp_path / f"s{n}"
        run("build", str(src), "--store", str(store))
        files = {}
        for fmt in ("ttl", "nt", "nq", "jsonld"):
            out = tmp_path / f"d{n}.{fmt}.gz"
            assert run("dump", "--store", str(store), "--format", fmt, "--gzip", str(out)).exit_code == 0
            files[fmt] = out.read_bytes()
        outputs.append(files)
        time.sleep(1.1)  # a different wall-clock second for the second build
    assert outputs[0] == outputs[1]
    nq = gzip.decompress(outputs[0]["nq"]).decode()
    assert "<https://w3id.org/movement-graph/graph/org-a>" in nq
    assert "Licensed CC BY 4.0" in nq.splitlines()[0]
    assert "graph/build" not in nq, "the wall-clock build record stays out of dumps"


def test_bundle_source_reads_a_revision_without_checkout(bundle, tmp_path):
    r = run("validate", str(bundle), "--rev", "v1.0.0")
    assert "473 entities from 473 files" in r.output


@pytest.mark.corpus
def test_a_killed_build_never_corrupts_or_half_replaces_the_store(corpus_dir, tmp_path):
    store = tmp_path / "s"
    small = corpus(tmp_path, *GOOD)
    assert run("build", str(small), "--store", str(store)).exit_code == 0
    before = current_build(store)
    count = len(Store.read_only(str(before)))
    rng = random.Random(7)
    for delay in sorted(rng.uniform(0.3, 4.0) for _ in range(4)):
        proc = subprocess.Popen([sys.executable, "-c", "from mg_rdf.cli import main; main()", "build",
                                 str(corpus_dir), "--store", str(store)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = current_build(store)
        if now == before:
            assert len(Store.read_only(str(now))) == count
        else:  # the build finished before the kill: then it is complete
            assert len(Store.read_only(str(now))) > 100_000
            before, count = now, len(Store.read_only(str(now)))
    # and the next build cleans up what the killed ones left behind
    assert run("build", str(small), "--store", str(store)).exit_code == 0
    assert not list((store / "builds").glob(".tmp-*"))


def test_a_forked_worker_does_not_keep_the_build_lock(tmp_path):
    """SHACL and audit workers are forked while the build holds the store's lock; one that
    outlives its build (killed a moment ago) must not make the next build wait or fail."""
    from mg_rdf.store import build_lock

    with build_lock(tmp_path):
        pid = os.fork()
        if pid == 0:   # the worker: lives on after the build lets go
            time.sleep(3)
            os._exit(0)
    try:
        t0 = time.monotonic()
        with build_lock(tmp_path):
            pass
        assert time.monotonic() - t0 < 1, "the forked worker still held the lock"
    finally:
        os.waitpid(pid, 0)


def test_serve_without_a_store_builds_the_sample_first_outside_the_supervisor(tmp_path):
    """README's first command: `mg-rdf serve` on an empty store builds the bundled sample. The build
    runs in a new interpreter, so the supervisor that forks the serving processes never ran RocksDB."""
    import requests

    from live_server import start_server

    store = tmp_path / "store"
    server = start_server(store, "--processes", "1", timeout=120)
    try:
        log = server.log.read_text()
        assert "building the bundled sample corpus first" in log
        assert f"built {store}/builds/" in log
        r = requests.get(server.url + "/sparql", params={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?g mg:describes ?e }"},
                         headers={"Accept": "application/sparql-results+json"}, timeout=30)
        assert r.status_code == 200
        n = int(r.json()["results"]["bindings"][0]["n"]["value"])
        assert n == len(list((Path(__file__).parents[1] / "entities").glob("*/*.md")))
        assert current_build(store) is not None
        threads = [(p / "comm").read_text().strip() for p in Path(f"/proc/{server.process.pid}/task").iterdir()]
        assert not [t for t in threads if t.startswith("rocksdb")], threads   # it never opened a store
    finally:
        server.stop()
