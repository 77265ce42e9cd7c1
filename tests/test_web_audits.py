"""The audit trail on the pages: each entity page's audit, the home page's corpus-wide figures.

Real-corpus tests read the expected values independently of mg-rdf: the corpus's own
RELIABILITY.md (PyYAML), the audit files (PyYAML for the frontmatter, regular expressions
for the ``## Claim`` headings and ``Decision:`` lines) and ``git hash-object`` of the entity
files. Small-corpus tests build a store from texts written here, for what the real corpus
does not show on demand: hostile text, the old vocabulary, decisions kept as text.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from pyoxigraph import NamedNode

from conftest import ROOT, make_corpus
from mg_rdf.build import build
from mg_rdf.source import FolderSource, blob_hash
from mg_rdf.vocab import DataIris
from mg_rdf.web import create_app

MG = "https://w3id.org/movement-graph/ontology#"
IRIS = DataIris()
# An audit with claim sections decided 'correction' (three, while its frontmatter declares two).
CORRECTED = "camp-ajl-safe-face-pledge-2018-2021"


# -- reading pages ---------------------------------------------------------------------------------

@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    classes: set[str] = field(default_factory=set)
    ancestors: list[Element] = field(default_factory=list, repr=False)


class Elements(HTMLParser):
    """Every element of a page with its attributes and its whole text (nested text included)."""

    VOID = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"))

    def __init__(self, body: str):
        super().__init__(convert_charrefs=True)
        self.all: list[Element] = []
        self._open: list[Element] = []
        self.feed(body)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        e = Element(tag, a, classes=set(a.get("class", "").split()), ancestors=list(self._open))
        self.all.append(e)
        if tag not in self.VOID:
            self._open.append(e)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for e in self._open:
            e.text += data

    def find(self, tag: str | None = None, cls: str | None = None, within: Element | None = None,
             **attrs: str) -> list[Element]:
        return [e for e in self.all if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
                and (within is None or any(a is within for a in e.ancestors))
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Element:
        found = self.find(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def number(text: str) -> int:
    return int(text.strip().replace(",", ""))


def page(client, entity_id: str) -> tuple[str, Elements]:
    r = client.get(f"/page/{entity_id}")
    assert r.status_code == 200, (entity_id, r.status_code)
    body = r.get_data(as_text=True)
    return body, Elements(body)


def audit_section(body: str) -> Elements:
    start = body.index('<section id="audit"')
    return Elements(body[start:body.index("</section>", start)])


# -- the corpus, read without mg-rdf -------------------------------------------------------------

@dataclass
class AuditFile:
    front: dict
    claims: list[tuple[str, str, str]]   # (number, heading text, decision word) per "## Claim N" section


def read_audit_file(path: Path) -> AuditFile:
    _, front, body = path.read_text(encoding="utf-8").split("---\n", 2)
    claims = []
    for section in re.split(r"(?m)^(?=## )", body):
        head = re.match(r"## Claim (\d+[a-z]?):?\s*(.*)", section)
        decision = re.search(r"(?m)^Decision:\s*([A-Za-z-]+)", section)
        if head and decision:
            claims.append((head.group(1), head.group(2).strip(), decision.group(1).lower()))
    return AuditFile(yaml.safe_load(front), claims)


def git_blobs(corpus_dir: Path) -> dict[str, str]:
    """Entity id (file stem) -> `git hash-object` of its file."""
    files = sorted((corpus_dir / "entities").glob("*/*.md"))
    out = subprocess.run(["git", "hash-object", "--stdin-paths"], input="\n".join(map(str, files)),
                         capture_output=True, text=True, check=True).stdout.split()
    return {p.stem: h for p, h in zip(files, out)}


def reliability(corpus_dir: Path) -> dict[str, int]:
    """The figures of RELIABILITY.md's frontmatter (its whole numbers; not the generator's notes)."""
    front = yaml.safe_load((corpus_dir / "RELIABILITY.md").read_text(encoding="utf-8").split("---\n")[1])
    return {k: v for k, v in front.items() if isinstance(v, int) and not isinstance(v, bool)}


@pytest.fixture(scope="module")
def head_app(head_build):
    return create_app({"STORE_PATH": head_build.store_path.parent.parent, "TESTING": True})


@pytest.fixture(scope="module")
def blobs(corpus_dir: Path) -> dict[str, str]:
    return git_blobs(corpus_dir)


# -- the home page ---------------------------------------------------------------------------------

@pytest.mark.corpus
def test_home_page_audit_figures_agree_with_reliability_md(head_app, corpus_dir, blobs):
    body = head_app.test_client().get("/").get_data(as_text=True)
    shown = {e.attrs["data-figure"]: number(e.text) for e in Elements(body).find() if "data-figure" in e.attrs}
    expected = reliability(corpus_dir)
    assert len(expected) == 12, f"RELIABILITY.md's figures changed shape: {sorted(expected)}"
    missing = sorted(set(expected) - set(shown))
    assert not missing, f"the home page does not show {missing}"
    assert {k: shown[k] for k in expected} == expected
    # and the one figure RELIABILITY.md lacks, counted from the files themselves
    fronts = [read_audit_file(f).front for f in (corpus_dir / "audits").glob("*.md")]
    assert shown["stale_audits"] == sum(blobs.get(f["entity_id"]) != f["entity_hash"] for f in fronts)


def test_home_page_says_when_a_build_has_no_audits(sample_app):
    body = sample_app.test_client().get("/").get_data(as_text=True)
    section = body[body.index('id="audits"'):]
    assert "holds no audits" in section[:section.index("</section>")]
    assert "data-figure" not in body


# -- entity pages over the real corpus -----------------------------------------------------------

@pytest.mark.corpus
def test_entity_page_shows_its_audit_claim_by_claim_with_corrections_highlighted(head_app, corpus_dir, blobs):
    audit = read_audit_file(corpus_dir / "audits" / f"{CORRECTED}.md")
    corrections = {n for n, _, d in audit.claims if d == "correction"}
    text = (corpus_dir / "audits" / f"{CORRECTED}.md").read_text(encoding="utf-8")
    assert len(corrections) == len(re.findall(r"(?m)^Decision: correction\b", text)) > 0
    body, _ = page(head_app.test_client(), CORRECTED)
    section = audit_section(body)

    assert section.one("span", "status-word").attrs["data-status"] == audit.front["status"]
    current = blobs[CORRECTED] == audit.front["entity_hash"]
    assert section.one("p", "audit-freshness").attrs["data-stale"] == ("false" if current else "true")
    counts = {e.attrs["data-decision"]: number(e.text) for e in section.find("strong") if "data-decision" in e.attrs}
    assert counts.get("correction") == len(corrections)
    assert sum(counts.values()) == len(audit.claims)

    claims = section.find("li", "claim")
    assert [e.attrs["id"] for e in claims] == [f"claim-{n}" for n, _, _ in audit.claims]
    assert {e.attrs["id"] for e in claims if "flagged" in e.classes} == {f"claim-{n}" for n in corrections}
    n, heading, decision = audit.claims[0]
    first = section.find("summary")[0]
    assert words(heading) in words(first.text) and f"Claim {n}" in first.text and decision in first.text
    # collapsed by default: no <details open>
    assert all("open" not in d.attrs for d in section.find("details"))
    # source links are http(s) only
    hrefs = [a.attrs["href"] for a in section.find("a", "external")]
    assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs)
    # the frontmatter declares other counts than the sections here: the page says so
    declared = audit.front["open_corrections"]
    if declared != len(corrections):
        assert f"correction {declared}" in words(section.one("p", "declared").text)


@pytest.mark.corpus
def test_a_stale_audit_says_plainly_that_the_entry_changed_since(head_app, corpus_dir, blobs):
    stale = next(p.stem for p in sorted((corpus_dir / "audits").glob("*.md"))
                 if p.stem in blobs and blobs[p.stem] != read_audit_file(p).front["entity_hash"])
    audited = read_audit_file(corpus_dir / "audits" / f"{stale}.md").front["entity_hash"]
    body, _ = page(head_app.test_client(), stale)
    section = audit_section(body)
    note = section.one("p", "audit-freshness")
    assert note.attrs["data-stale"] == "true" and "stale" in note.classes
    assert "this entry has changed since it was audited" in words(note.text)
    assert audited[:10] in note.text and blobs[stale][:10] in note.text
    in_focus = body[body.index('id="in-focus"'):body.index('id="connections"')]
    assert "stale" in in_focus


@pytest.mark.corpus
def test_an_entity_without_audit_says_so(head_app, corpus_dir, blobs):
    audited = {p.stem for p in (corpus_dir / "audits").glob("*.md")}
    unaudited = min(set(blobs) - audited)
    body, _ = page(head_app.test_client(), unaudited)
    section = audit_section(body)
    assert "has not been audited" in words(section.all[0].text)
    assert not section.find("li", "claim") and not section.find("span", "status-word")
    assert "not audited" in body[body.index('id="in-focus"'):body.index('id="connections"')]


@pytest.mark.corpus
def test_the_audit_link_is_not_shown_as_an_inferred_backlink(head_app, head_store):
    entity = NamedNode(IRIS.entity(CORRECTED))
    stated = list(head_store.quads_for_pattern(entity, NamedNode(MG + "audit"), None, None))
    assert stated and stated[0].graph_name.value != IRIS.graph(CORRECTED)   # another graph says it
    body, _ = page(head_app.test_client(), CORRECTED)
    connections = Elements(body[body.index('<section id="connections"'):body.index('<section id="background"')])
    assert not [d for d in connections.find("dt") if d.text.strip().lower().startswith("audit")]
    assert not [a for a in connections.find("a") if "/audit/" in a.attrs.get("href", "")]


@pytest.mark.corpus
def test_audited_entity_pages_stay_fast(head_app, corpus_dir):
    """Measured over every audited entity, first request each; bounded loosely (the target is
    a 20 ms median over all pages, which benchmarks measure on a quiet machine)."""
    client = head_app.test_client()
    audited = sorted(p.stem for p in (corpus_dir / "audits").glob("*.md"))
    client.get("/")
    times = []
    for entity_id in audited:
        t0 = time.perf_counter()
        r = client.get(f"/page/{entity_id}")
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code in (200, 404)   # 404: an audit of an entity this version no longer has
    median = statistics.median(times)
    print(f"\naudited entity pages, first request each ({len(times)}): median {median:.1f} ms")
    assert median < 80, f"audited entity pages take {median:.0f} ms (median)"


# -- a small corpus written here -------------------------------------------------------------------

ACCESS_NOW = (ROOT / "entities" / "organizations" / "org-access-now.md").read_bytes()
EDRI = (ROOT / "entities" / "organizations" / "org-edri.md").read_bytes()
AMNESTY = (ROOT / "entities" / "organizations" / "org-amnesty-international.md").read_bytes()

HOSTILE = f"""---
entity_id: org-access-now
entity_hash: {blob_hash(ACCESS_NOW)}
audit_date: 2026-06-20
pass: 2
status: corrections-pending
claims_total: 3
claims_corroborated: 1
claims_primary_sourced: 0
claims_single_source: 0
claims_uncorroborated: 0
open_corrections: 1
---

## Claim 1: "<script>alert('claim')</script> founded in 2008"

Source: javascript:alert(1) and https://example.org/founding
Source content: "<img src=x onerror=alert(2)> founded in 2009"
Comparison: The year differs.
Decision: correction

## Claim 2: "a member of EDRi"

Source: entities/organizations/org-edri.md
Source tier: primary
Comparison: The member list names it.
Decision: corroborated

## Claim 3: "works in 30 countries"

Source: no canonical source found
Comparison: Nothing to compare with.
Decision: perhaps-later
"""

OLD_WORDS = """---
entity_id: org-edri
entity_hash: deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
audit_date: 2026-05-01
pass: 1
status: discrepancy
claims_total: 2
claims_verified: 1
claims_discrepancy: 1
claims_unverifiable: 0
---

## Claim 1: "founded in 2002"

Source: https://edri.org/about/
Comparison: Matches.
Decision: verified

## Claim 2: "based in Berlin"

Source: https://edri.org/contact/
Comparison: The office is in Brussels.
Decision: discrepancy
"""


@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("audited")
    corpus = make_corpus(root / "corpus", {
        "entities/organizations/org-access-now.md": ACCESS_NOW, "entities/organizations/org-edri.md": EDRI,
        "entities/organizations/org-amnesty-international.md": AMNESTY,
        "audits/org-access-now.md": HOSTILE, "audits/org-edri.md": OLD_WORDS})
    build(FolderSource(corpus, repository=""), root / "store", IRIS, workers=1)
    return create_app({"STORE_PATH": root / "store", "TESTING": True})


def test_audit_text_is_escaped_and_only_http_links_are_made(small_app):
    body, _ = page(small_app.test_client(), "org-access-now")
    section = audit_section(body)
    raw = body[body.index('<section id="audit"'):]
    assert "<script>alert" not in raw and "<img src=x" not in raw
    assert "&lt;script&gt;alert" in raw
    hrefs = [a.attrs.get("href", "") for a in section.find("a")]
    assert "https://example.org/founding" in hrefs
    assert not [h for h in hrefs if h.lower().startswith(("javascript", "data:"))]
    assert "javascript:alert(1)" in words(section.one("li", "claim", id="claim-1").text)   # kept, as text


def test_a_cited_corpus_file_links_to_that_entity_page(small_app):
    section = audit_section(page(small_app.test_client(), "org-access-now")[0])
    claim = section.one("li", "claim", id="claim-2")
    assert [a.attrs["href"] for a in section.find("a", within=claim)] == ["/page/org-edri"]
    assert section.one("a", "entity", within=claim).text == "European Digital Rights (EDRi)"


def test_a_decision_the_vocabulary_lacks_is_shown_as_written_and_counted_apart(small_app):
    section = audit_section(page(small_app.test_client(), "org-access-now")[0])
    claim = section.one("li", "claim", id="claim-3")
    assert "d-other" in claim.classes and "flagged" not in claim.classes
    assert "perhaps-later" in claim.text
    counts = {e.attrs["data-decision"]: number(e.text) for e in section.find("strong") if "data-decision" in e.attrs}
    assert counts == {"corroborated": 1, "correction": 1, "other": 1}
    assert section.one("li", "claim", id="claim-1").classes >= {"flagged", "d-correction"}


def test_an_audit_in_the_old_vocabulary_reads_in_its_own_words_and_is_stale(small_app):
    body, _ = page(small_app.test_client(), "org-edri")
    section = audit_section(body)
    assert section.one("span", "status-word").attrs["data-status"] == "discrepancy"
    assert "before 2026-06-10" in words(body[body.index('<section id="audit"'):])
    assert section.one("p", "audit-freshness").attrs["data-stale"] == "true"
    flagged = [e.attrs["id"] for e in section.find("li", "claim") if "flagged" in e.classes]
    assert flagged == ["claim-2"]
    counts = {e.attrs["data-decision"]: number(e.text) for e in section.find("strong") if "data-decision" in e.attrs}
    assert counts == {"verified": 1, "discrepancy": 1}


def test_small_corpus_home_figures_count_both_vocabularies(small_app):
    body = small_app.test_client().get("/").get_data(as_text=True)
    shown = {e.attrs["data-figure"]: number(e.text) for e in Elements(body).find() if "data-figure" in e.attrs}
    assert shown["audited_entities"] == 2 and shown["total_entities"] == 3 and shown["audit_coverage_pct"] == 66
    assert shown["total_claims"] == 5 and shown["open_corrections"] == 1 and shown["claims_corroborated"] == 1
    assert shown["claims_discrepancy"] == 1 and shown["claims_verified"] == 1
    assert shown["status_corrections_pending"] == 1 and shown["status_discrepancy"] == 1
    assert shown["stale_audits"] == 1


def test_an_unaudited_entity_of_an_audited_corpus_says_so(small_app):
    body, _ = page(small_app.test_client(), "org-amnesty-international")
    assert "has not been audited" in words(audit_section(body).all[0].text)
