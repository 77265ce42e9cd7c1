"""Real malformed files from the corpus's git history, read from the bundle.

The first 350 commits of the Movement Graph (147f9c7, the root, through
cd1a106; fixed in d8ecd4e, all before v1.0.0) hold entity files whose YAML
frontmatter does not parse: 97 at the root, never more, falling to 29 before
the fix; no commit after d8ecd4e (v1.0.0, v1.1.0, v2.0.0 included) has any. They
are unquoted ``note:``/``notable_for:`` values that contain ``": "``, that start
with ``*Markdown italics*`` (read as an undefined YAML alias), or that start with
a ``"quoted"`` phrase followed by more text. mg-rdf must name each of them with
its path, line and the problem, and still read every other file of the commit.

Expectations are computed inside the test with git and PyYAML's pure-Python
``yaml.safe_load``, never with mg-rdf's reader. Analyses run without SHACL, once
per commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mg_rdf.build import Analysis, analyse
from mg_rdf.source import GitSource
from mg_rdf.vocab import DataIris

pytestmark = pytest.mark.corpus

ROOT_COMMIT = "147f9c79a5b12ed4a59f2237e7390c5ab1587f30"         # the root: 97 of 355 unparseable
BOSCH_COMMIT = "c3e849f38b0a655d1e587155ff0e6eb9c70ce93a"        # edits a broken file, leaves it broken
LAST_BROKEN_COMMIT = "cd1a1068a326fc97918c8ef56aa353593e1ca228"  # 29 of 452 still unparseable
FIX_COMMIT = "d8ecd4eb9830b02a90ff868d2b0bda2edbcb8a7f"          # "29 yq-drain" fixes the last 29

# commit -> (entity files, files yaml.safe_load rejects); both recomputed from git below
EXPECTED_COUNTS = {
    ROOT_COMMIT: (355, 97),
    BOSCH_COMMIT: (432, 31),
    LAST_BROKEN_COMMIT: (452, 29),
    FIX_COMMIT: (452, 0),
}

# (commit, path, file line, what mg-rdf's message must say)
PINNED = [
    # note: *Automating Society Report 2020* team page — ...   (italics read as an alias)
    (ROOT_COMMIT, "entities/voices/voice-matthias-spielkamp.md", 30, "undefined alias"),
    # note: *Automating Banishment: The Surveillance and Policing of Looted Land* (...
    (ROOT_COMMIT, "entities/local-groups/lg-stop-lapd-spying-coalition.md", 29, "undefined alias"),
    # note: "Who we are" page — leadership (...)   (a quoted phrase, then more text)
    (ROOT_COMMIT, "entities/funders/fund-mozilla-foundation.md", 21, "did not find expected key"),
    # note: Chupadados's own about page — ... including "Mother in a click: pregnancy as ...
    (ROOT_COMMIT, "entities/campaigns/camp-coding-rights-chupadados.md", 31, "mapping values are not allowed"),
    # note: Foundation's own ... press release — ... framing quotation: "Technological ...
    # (broken since the root; c3e849f rewrote the note, the last new malformed blob in history)
    (BOSCH_COMMIT, "entities/funders/fund-robert-bosch-stiftung.md", 24, "mapping values are not allowed"),
    # notable_for: Founding and leading ... [*The TESCREAL bundle: Eugenics and ...
    (LAST_BROKEN_COMMIT, "entities/voices/voice-timnit-gebru.md", 11, "mapping values are not allowed"),
    # note: "A Narrow Path: How to Secure Our Future" landing page — ...
    (LAST_BROKEN_COMMIT, "entities/voices/voice-andrea-miotti.md", 29, "did not find expected key"),
]


# -- independent reading: git + yaml.safe_load ---------------------------------

@pytest.fixture(scope="module")
def git_dir(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare mirror of the bundle of our own, for git ls-tree / cat-file."""
    target = tmp_path_factory.mktemp("history") / "movement-graph.git"
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(bundle), str(target)], check=True)
    return target


def _git(git_dir: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], input=data,
                          capture_output=True, check=True).stdout


class History:
    """Entity files of a commit as git lists them, and what safe_load thinks of each."""

    def __init__(self, git_dir: Path):
        self.git_dir = git_dir
        self._safe_load_error: dict[str, yaml.MarkedYAMLError | None] = {}   # blob -> error

    def commit(self, rev: str) -> str:
        return _git(self.git_dir, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()

    def entity_files(self, rev: str) -> dict[str, str]:
        """path -> blob of every entities/**/*.md (no symlinks) at ``rev``, from git ls-tree."""
        out = _git(self.git_dir, "ls-tree", "-r", "-z", rev, "--", "entities")
        files = {}
        for entry in filter(None, out.split(b"\0")):
            meta, path = entry.split(b"\t", 1)
            mode, kind, blob = meta.decode().split()
            if kind == "blob" and mode != "120000" and path.endswith(b".md"):
                files[path.decode()] = blob
        return files

    def blobs(self, blobs: list[str]) -> dict[str, bytes]:
        data = _git(self.git_dir, "cat-file", "--batch", data="".join(b + "\n" for b in blobs).encode())
        out, pos = {}, 0
        for blob in blobs:
            nl = data.index(b"\n", pos)
            size = int(data[pos:nl].split()[2])
            out[blob] = data[nl + 1: nl + 1 + size]
            pos = nl + 1 + size + 1
        return out

    def safe_load_errors(self, rev: str) -> dict[str, yaml.MarkedYAMLError]:
        """path -> the error plain yaml.safe_load raises on that file's frontmatter."""
        files = self.entity_files(rev)
        todo = sorted({b for b in files.values() if b not in self._safe_load_error})
        for blob, data in self.blobs(todo).items():
            self._safe_load_error[blob] = _safe_load_error(data)
        return {p: e for p, b in files.items() if (e := self._safe_load_error[b]) is not None}


def _frontmatter(data: bytes) -> str:
    """The text between the opening '---' line (file line 1) and the closing one."""
    lines = data.decode("utf-8").removeprefix("\ufeff").split("\n")
    assert lines[0].rstrip() == "---"
    end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == "---")
    return "\n".join(lines[1:end])


def _safe_load_error(data: bytes) -> yaml.MarkedYAMLError | None:
    """What plain yaml.safe_load raises on the frontmatter, with ``file_line`` added."""
    try:
        yaml.safe_load(_frontmatter(data))
    except yaml.MarkedYAMLError as e:
        e.file_line = e.problem_mark.line + 2  # type: ignore[attr-defined]  # 0-based, after '---'
        return e
    return None


@pytest.fixture(scope="module")
def history(git_dir: Path) -> History:
    return History(git_dir)


# -- mg-rdf's reading: one analysis per commit ----------------------------------

@pytest.fixture(scope="module")
def analysis_of(bundle: Path):
    cache: dict[str, Analysis] = {}

    def get(rev: str) -> Analysis:
        if rev not in cache:
            cache[rev] = analyse(GitSource(bundle, rev), DataIris(), shacl=False)
        return cache[rev]

    return get


def _syntax_problems(a: Analysis) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in a.problems:
        if p.rule == "yaml-syntax":
            out.setdefault(p.path, []).append(p)
    return out


# -- the tests ------------------------------------------------------------------

@pytest.mark.parametrize("commit, path, line, what", PINNED,
                         ids=[f"{c[:7]}:{p.rsplit('/', 1)[-1]}" for c, p, _, _ in PINNED])
def test_malformed_file_is_reported_with_path_line_and_problem(history, analysis_of, commit, path, line, what):
    files = history.entity_files(commit)
    assert path in files, f"{path} is not in {commit[:7]}"
    error = _safe_load_error(history.blobs([files[path]])[files[path]])
    assert error is not None, f"yaml.safe_load reads {commit[:7]}:{path}; it was expected to fail"
    assert error.file_line == line, f"safe_load fails on line {error.file_line}, not {line}"

    a = analysis_of(commit)
    reported = [p for p in a.problems if p.path == path]
    assert [p.rule for p in reported] == ["yaml-syntax"], [p.format() for p in reported]
    problem = reported[0]
    assert problem.severity.value == "violation"
    assert problem.line == line
    assert problem.message.startswith("YAML syntax error")
    assert what in problem.message
    assert problem.format().startswith(f"{path}:{line} ")
    assert path not in {e.path for e in a.entities}


@pytest.mark.parametrize("commit", list(EXPECTED_COUNTS), ids=lambda c: c[:7])
def test_the_rest_of_the_commit_is_still_read(history, analysis_of, commit):
    files = history.entity_files(commit)
    broken = history.safe_load_errors(commit)
    assert (len(files), len(broken)) == EXPECTED_COUNTS[commit]

    a = analysis_of(commit)
    assert a.files == len(files)
    reported = _syntax_problems(a)
    assert set(reported) == set(broken), "mg-rdf and yaml.safe_load disagree on which files are unparseable"
    for path, problems in reported.items():
        assert len(problems) == 1
        assert problems[0].line == broken[path].file_line, path
    assert len(a.entities) == len(files) - len(broken)
    assert {e.path for e in a.entities} == set(files) - set(broken)
    assert not any(p.rule in ("encoding", "frontmatter", "yaml-value", "yaml-depth", "yaml-alias")
                   for p in a.problems)


def test_the_defects_span_the_first_350_commits_before_v1(history):
    """The unparseable files predate v1.0.0: the fix commit is an ancestor of v1.0.0."""
    fix, last_broken = history.commit(FIX_COMMIT), history.commit(LAST_BROKEN_COMMIT)
    assert _git(history.git_dir, "rev-parse", f"{fix}^").decode().strip() == last_broken
    assert subprocess.run(["git", "--git-dir", str(history.git_dir), "merge-base", "--is-ancestor",
                           fix, "v1.0.0"]).returncode == 0
    assert _git(history.git_dir, "rev-list", "--count", fix).decode().strip() == "351"


def test_every_entity_file_in_history_is_read_as_pyyaml_reads_it(history):
    """reader.py builds the values of a frontmatter itself (faster than PyYAML's constructor):
    for each of the ~2,000 versions of an entity file in the whole history, malformed ones
    included, the record, its line numbers and the problems are those of PyYAML's own reading."""
    from test_reader import assert_read_as_pyyaml_reads

    listed = _git(history.git_dir, "rev-list", "--all", "--objects", "--", "entities").decode().splitlines()
    versions = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in listed
                if " " in line and line.endswith(".md")}
    assert len(versions) > 1500
    for blob, data in history.blobs(sorted(versions)).items():
        assert_read_as_pyyaml_reads(data, versions[blob])
