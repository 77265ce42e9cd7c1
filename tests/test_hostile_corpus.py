"""A corpus edited by many hands: every kind of broken file is reported with its file
and field, never a traceback, and the rest of the corpus is still built."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pyoxigraph import Store

from conftest import make_corpus
from mg_rdf.build import build
from mg_rdf.problems import Severity
from mg_rdf.source import FolderSource
from mg_rdf.store import current_build
from mg_rdf.vocab import DataIris


def fm(eid: str, etype: str, extra: str = "", name: str | None = None) -> str:
    return (f"---\nid: {eid}\ntype: {etype}\nname: {name or eid}\nstatus: active\nconfidence: high\n"
            f"tags: [t]\ncreated: 2026-01-01\nlast_updated: 2026-01-01\nsources: []\n{extra}---\n\n# {name or eid}\n")


def hostile(root: Path, outside: Path) -> Path:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(10))
    files = {
        "entities/organizations/org-good.md": fm("org-good", "organization", "related_orgs: [org-good]\n"),
        "entities/organizations/org-bomb.md": "---\n" + bomb + "id: org-bomb\n---\n",
        "entities/organizations/org-huge-body.md": fm("org-huge-body", "organization") + "lorem ipsum " * 400_000,
        "entities/organizations/org-latin1.md": b"---\nid: org-latin1\nname: Caf\xe9\n---\n",
        "entities/organizations/org-nul.md": fm("org-nul", "organization").replace("name: org-nul", "name: a\x00b"),
        "entities/organizations/org-list.md": "---\n- id: org-list\n---\n",
        "entities/organizations/org-scalar.md": "---\norg-scalar\n---\n",
        "entities/organizations/org-dupkey.md": fm("org-dupkey", "organization", "founded: 2001\nfounded: 2002\n"),
        "entities/organizations/org-dupid.md": fm("org-good", "organization"),
        "entities/organizations/org-slash.md": fm("org-../../etc/passwd", "organization"),
        "entities/organizations/org-space.md": fm("'org-with space'", "organization"),
        "entities/organizations/org-unicode.md": fm("org-café", "organization"),
        "entities/organizations/org-urls.md": fm("org-urls", "organization",
                                                 "website: 'javascript:alert(1)'\n"
                                                 "funders: []\nsources_extra: 'file:///etc/passwd'\n"),
        "entities/organizations/org-date.md": fm("org-date", "organization", "founded: 2021-02-30\n"),
        "entities/organizations/org-tagstring.md": fm("org-tagstring", "organization").replace("tags: [t]", "tags: just-one"),
        "entities/organizations/org-longname.md": fm("org-longname", "organization", name="N" * 100_000),
        "entities/organizations/org-self.md": fm("org-self", "organization", "related_orgs: [org-self]\n"),
        "entities/campaigns/camp-cycle-a.md": fm("camp-cycle-a", "campaign", "events: [event-cycle]\n"),
        "entities/events/event-cycle.md": fm("event-cycle", "event",
                                             "campaign: camp-cycle-a\nrelated_events: [event-cycle]\n"),
    }
    make_corpus(root, files)
    (outside / "secret.md").write_text(fm("org-secret", "organization"))
    os.symlink(outside / "secret.md", root / "entities" / "organizations" / "org-secret.md")
    return root


def test_a_hostile_corpus_builds_what_it_can_and_reports_the_rest(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = hostile(tmp_path / "corpus", outside)
    t0 = time.perf_counter()
    result = build(FolderSource(root), tmp_path / "store", DataIris(), workers=1)
    assert time.perf_counter() - t0 < 60, "no hang"
    probs = {(p.path.split("/")[-1], p.rule) for p in result.analysis.problems}
    expected = {
        ("org-bomb.md", "yaml-alias"), ("org-latin1.md", "encoding"), ("org-nul.md", "encoding"),
        ("org-list.md", "frontmatter"), ("org-scalar.md", "frontmatter"), ("org-dupkey.md", "duplicate-key"),
        # the first file by path keeps a duplicated id (org-dupid.md), the later one is reported
        ("org-good.md", "duplicate-id"), ("org-dupid.md", "filename-id"),
        ("org-slash.md", "filename-id"), ("org-space.md", "filename-id"),
        ("org-unicode.md", "filename-id"), ("org-urls.md", "bad-url"), ("org-urls.md", "unknown-field"),
        ("org-date.md", "bad-date"), ("org-tagstring.md", "wrong-shape"), ("org-self.md", "self-reference"),
        ("org-secret.md", "symlink-outside"),
    }
    assert expected <= probs, sorted(expected - probs)
    for p in result.analysis.problems:
        if p.rule == "wikidata-link":
            # the shipped mapping names real-corpus ids this corpus lacks: information only
            assert p.path == "data/wikidata-links.tsv" and p.severity is Severity.INFO and p.message
        else:
            assert p.path.startswith("entities/") and p.message
    store = Store.read_only(str(current_build(tmp_path / "store")))
    names = {r["e"].value.rsplit("/", 1)[-1] for r in store.query(
        "SELECT ?e WHERE { GRAPH ?g { ?g <https://w3id.org/movement-graph/ontology#describes> ?e } }")}
    assert {"org-good", "org-huge-body", "org-longname", "camp-cycle-a", "event-cycle", "org-date"} <= names
    assert "org-secret" not in names, "a file outside the corpus is never read"
    assert "org-..%2F..%2Fetc%2Fpasswd" in names, "a path-like id stays one percent-encoded IRI segment"
    assert "org-café" in names
    # the entity files kept for serving are packs in the store's sources folder, named by the
    # build, never by an id: nothing lands elsewhere, whatever the ids look like
    packs = tmp_path / "store" / "sources" / "packs"
    kept = [p for p in (tmp_path / "store" / "sources").rglob("*") if p.is_file()]
    assert kept and all(p.parent == packs and p.suffix in (".pack", ".idx") for p in kept), kept
    assert [p.name for p in outside.iterdir()] == ["secret.md"]
