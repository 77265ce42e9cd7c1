"""A small git history of the sample corpus, written for the release tests.

Tags (commit dates one month apart, so pins sort by date):

- ``v1``: the sample corpus (entities/ of mg-rdf) as it is;
- ``v2``: ``strat-ban-not-regulate`` renamed to ``strat-prohibition-over-regulation``
  (file moved, id changed, nothing else), ``lg-open-rights-group-sheffield`` moved to
  ``org-open-rights-group-sheffield`` with its type changed (a git rename only),
  ``org-edri`` renamed and tagged anew, ``person-hamid-khan`` deleted,
  ``org-new-member`` added;
- ``v3``: a sentence added to ``msg-banbs``'s body;
- ``broken``: a commit after v3 that deletes every entity (a pin that cannot build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RENAMED = {"strat-ban-not-regulate": "strat-prohibition-over-regulation",
           "lg-open-rights-group-sheffield": "org-open-rights-group-sheffield"}


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _commit(repo: Path, tag: str, date: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", tag, date=date)
    git(repo, "tag", tag)


def make_history(repo: Path) -> Path:
    """Write the history into ``repo`` (a new git repository) and return it."""
    shutil.copytree(ROOT / "entities", repo / "entities")
    git(repo, "init", "-q", "-b", "main")
    _commit(repo, "v1", "2026-01-01T12:00:00+00:00")

    e = repo / "entities"
    old = e / "strategies/strat-ban-not-regulate.md"
    new = e / "strategies/strat-prohibition-over-regulation.md"
    git(repo, "mv", str(old.relative_to(repo)), str(new.relative_to(repo)))
    _edit(new, "id: strat-ban-not-regulate", "id: strat-prohibition-over-regulation")
    old = e / "local-groups/lg-open-rights-group-sheffield.md"
    new = e / "organizations/org-open-rights-group-sheffield.md"
    git(repo, "mv", str(old.relative_to(repo)), str(new.relative_to(repo)))
    _edit(new, "id: lg-open-rights-group-sheffield", "id: org-open-rights-group-sheffield")
    _edit(new, "type: local-group", "type: organization")
    org = e / "organizations/org-edri.md"
    _edit(org, "tags: [", "tags: [brand-new-tag, ")
    _edit(org, "name: ", "name: Renamed ")
    (e / "persons/person-hamid-khan.md").unlink()
    text = (e / "organizations/org-access-now.md").read_text()
    text = text.replace("id: org-access-now", "id: org-new-member").replace("name: Access Now", "name: New Member")
    (e / "organizations/org-new-member.md").write_text(text)
    _commit(repo, "v2", "2026-02-01T12:00:00+00:00")

    msg = e / "messages/msg-banbs.md"
    msg.write_text(msg.read_text() + "\nA sentence added at v3.\n")
    _commit(repo, "v3", "2026-03-01T12:00:00+00:00")

    git(repo, "rm", "-q", "-r", "entities")
    git(repo, "commit", "-q", "-m", "broken", date="2026-04-01T12:00:00+00:00")
    git(repo, "tag", "broken")
    git(repo, "reset", "-q", "--hard", "v3")
    return repo


def ids_at(repo: Path, rev: str) -> set[str]:
    """Entity ids at ``rev`` from file names alone (git ls-tree), not from mg-rdf."""
    names = git(repo, "ls-tree", "-r", "--name-only", rev, "--", "entities").split("\n")
    return {Path(n).stem for n in names if n.endswith(".md")}
