"""Where a corpus comes from: a folder on disk, or a git repository (a clone or a
bundle) at a revision, read with git itself and never checked out.

A source yields ``SourceFile``s (corpus-relative path, bytes, git blob hash) and
knows its provenance (commit, date, repository URL). Nothing here parses.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .problems import MgRdfError, Problem

ENTITY_ROOT = "entities"
AUDIT_ROOT = "audits"
DEFAULT_REPOSITORY = "https://github.com/Make-AI-Good/movement-graph"
MAX_FILE_BYTES = 8 * 1024 * 1024  # larger files are refused, not read into memory


class SourceFile:
    """One corpus file: its corpus-relative path ('/'-separated: entities/campaigns/camp-x.md),
    its bytes and their git blob hash (what `git hash-object` prints). A file known unchanged
    since the last build (see ``FolderSource.remember``) is read only if its bytes are asked for."""

    __slots__ = ("path", "blob", "_data", "_full")

    def __init__(self, path: str, data: bytes | None, blob: str, full: str | None = None):
        self.path, self.blob, self._data, self._full = path, blob, data, full

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._full is not None
            with open(self._full, "rb") as fh:
                self._data = fh.read()
        return self._data

    def __repr__(self) -> str:
        return f"SourceFile({self.path!r}, blob={self.blob!r})"


StatKey = tuple[int, int, int, int]   # size, mtime_ns, ctime_ns, inode
RACY_NS = 2_000_000_000   # a file changed this close to a build's reading is hashed again next time


@dataclass
class Provenance:
    """Where a build's input came from, as stated in the dataset metadata."""

    location: str                      # folder path or repository path given by the user
    commit: str | None = None          # full commit hash when known
    commit_date: str | None = None     # ISO 8601 committer date when known
    repository: str = DEFAULT_REPOSITORY
    rev: str | None = None             # what the user asked for (tag, branch, hash)

    @property
    def pin(self) -> str:
        return self.commit[:7] if self.commit else "working tree"

    def file_url(self, path: str) -> str | None:
        """A public URL of ``path`` at this commit, when the commit is known."""
        if not self.commit or not self.repository.startswith(("http://", "https://")):
            return None
        return f"{self.repository.rstrip('/')}/blob/{self.commit}/{path}"


def blob_hash(data: bytes) -> str:
    """The git blob hash of ``data``, so folder and git sources agree on content identity."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class CorpusSource:
    """Base: subclasses list and read the corpus's files."""

    provenance: Provenance
    problems: list[Problem] = field(default_factory=list)

    def entity_files(self) -> Iterator[SourceFile]:
        yield from self.files(ENTITY_ROOT)

    def audit_files(self) -> Iterator[SourceFile]:
        yield from self.files(AUDIT_ROOT)

    def files(self, root: str) -> Iterator[SourceFile]:  # pragma: no cover - abstract
        raise NotImplementedError


class FolderSource(CorpusSource):
    """A corpus folder (holding ``entities/``), e.g. ../shared/corpus/movement-graph."""

    def __init__(self, root: Path, commit: str | None = None, repository: str = DEFAULT_REPOSITORY,
                 listing: Listing | None = None):
        """``listing``: the folder as ``folder_listing`` saw it a moment ago (a watcher's last look,
        which found the change): not listed and stat'ed again."""
        self.root = root.resolve()
        if not (self.root / ENTITY_ROOT).is_dir():
            raise MgRdfError(f"{root}: not a corpus folder (no {ENTITY_ROOT}/ inside)")
        super().__init__(Provenance(str(root), commit=commit, repository=repository))
        self.known: dict[str, tuple[StatKey, str]] = {}
        self.stats: dict[str, StatKey] = {}
        self.started_ns = time.time_ns()
        self.listing = listing

    def remember(self, known: dict[str, tuple[StatKey, str]]) -> None:
        """What the last build saw: path -> (stat, blob). A file whose size, times and inode are
        those is not read or hashed again (git's index does the same); its blob is reused."""
        self.known.update(known)

    def files(self, root: str) -> Iterator[SourceFile]:
        listing = self.listing if self.listing is not None else folder_listing(self.root, (root,))
        prefix = root + "/"
        for rel, (key, link) in listing.items():
            if rel.startswith(prefix):
                yield from self._file(os.path.join(self.root, rel), rel, key, link)

    def _file(self, full: str, rel: str, key: StatKey | None, link: bool) -> Iterator[SourceFile]:
        seen = self.known.get(rel)
        if key is not None and seen is not None and seen[0] == key and not link:
            self.stats[rel] = key
            yield SourceFile(rel, None, seen[1], full)
            return
        data = self._read(Path(full), rel)
        if data is None:
            return
        if key is not None and max(key[1], key[2]) < self.started_ns - RACY_NS:
            self.stats[rel] = key   # else: changed too recently to trust its times next time
        yield SourceFile(rel, data, blob_hash(data))

    def _read(self, full: Path, rel: str) -> bytes | None:
        if full.is_symlink():
            target = full.resolve()
            if not target.is_relative_to(self.root):
                self.problems.append(Problem(rel, None, None, "symbolic link points outside the corpus; not read",
                                             str(os.readlink(full)), rule="symlink-outside"))
                return None
        if not full.is_file():
            return None
        size = full.stat().st_size
        if size > MAX_FILE_BYTES:
            self.problems.append(Problem(rel, None, None, f"file is larger than {MAX_FILE_BYTES} bytes; not read",
                                         str(size), rule="file-too-large"))
            return None
        return full.read_bytes()


Listing = dict[str, tuple[StatKey | None, bool]]   # path -> (stat, or None if it fails; a symbolic link?)


def folder_listing(root: Path, roots: tuple[str, ...] = (ENTITY_ROOT, AUDIT_ROOT)) -> Listing:
    """Every ``.md`` file under ``root``'s folders ``roots``, in reading order, with its stat
    (size, mtime, ctime, inode; one ``stat`` a file: a link's target's) and whether it is a link."""
    out: Listing = {}
    for name in roots:
        for rel, entry in markdown_entries(str(root / name), name):
            try:
                st = entry.stat()
                key: StatKey | None = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            except OSError:
                key = None
            out[rel] = (key, entry.is_symlink())
    return out


def markdown_entries(folder: str, rel: str) -> Iterator[tuple[str, os.DirEntry]]:
    """(path ``rel/…``, directory entry) of the ``.md`` files under ``folder``: its files in name
    order, then its folders'. ``os.scandir`` and strings, not pathlib, whose objects cost ~0.1 ms
    a file (most of the listing of a one-edit rebuild). Links to folders are not followed."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subfolders = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not entry.is_symlink():
                subfolders.append(entry)
        elif entry.name.endswith(".md"):
            yield f"{rel}/{entry.name}", entry
    for entry in subfolders:
        yield from markdown_entries(entry.path, f"{rel}/{entry.name}")


class GitSource(CorpusSource):
    """A git repository or bundle at a revision, read with ``git cat-file`` (no checkout)."""

    def __init__(self, location: Path, rev: str = "HEAD", repository: str = DEFAULT_REPOSITORY,
                 cache_dir: Path | None = None):
        self.location = location.resolve()
        self.git_dir = _git_dir_for(self.location, cache_dir)
        commit = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip()
        if not commit:
            raise MgRdfError(f"{location}: no commit called {rev!r}")
        date = self._git("show", "-s", "--format=%cI", commit).strip()
        super().__init__(Provenance(str(location), commit=commit, commit_date=date,
                                    repository=repository, rev=rev))

    def _git(self, *args: str, check: bool = True, data: bytes | None = None) -> str:
        proc = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], input=data,
                              capture_output=True)
        if check and proc.returncode != 0:
            raise MgRdfError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode("utf-8", errors="replace")

    def list_blobs(self, root: str) -> list[tuple[str, str, str]]:
        """(mode, blob, path) of every ``.md`` file under ``root`` at the commit."""
        out = subprocess.run(["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z",
                              self.provenance.commit or "HEAD", "--", root],
                             capture_output=True, check=True).stdout
        rows = []
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, path = entry.split(b"\t", 1)
            mode, kind, blob = meta.decode().split()
            p = path.decode("utf-8", errors="surrogateescape")
            if kind == "blob" and p.endswith(".md"):
                rows.append((mode, blob, p))
        return sorted(rows, key=lambda r: r[2])

    def files(self, root: str) -> Iterator[SourceFile]:
        rows = []
        for mode, blob, path in self.list_blobs(root):
            if mode == "120000":
                self.problems.append(Problem(path, None, None, "symbolic link in the repository; not followed",
                                             rule="symlink-outside"))
                continue
            rows.append((blob, path))
        if not rows:
            return
        with subprocess.Popen(["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
            assert proc.stdin and proc.stdout
            # Write all requests first from a thread-free loop: git answers in order,
            # and its output for ~1k files fits comfortably through the pipe as we read.

            def feed() -> None:
                assert proc.stdin
                for blob, _ in rows:
                    proc.stdin.write(blob.encode() + b"\n")
                proc.stdin.close()

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            for blob, path in rows:
                header = proc.stdout.readline().split()
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after each object
                if size > MAX_FILE_BYTES:
                    self.problems.append(Problem(path, None, None,
                                                 f"file is larger than {MAX_FILE_BYTES} bytes; not read",
                                                 str(size), rule="file-too-large"))
                    continue
                yield SourceFile(path, data, blob)
            feeder.join()

    def commit_of(self, rev: str) -> str:
        return self._git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()

    def renames_since(self, old_commit: str, root: str = ENTITY_ROOT) -> list[tuple[str, str, int]]:
        """(old path, new path, similarity %) of the files git sees renamed under ``root``
        between ``old_commit`` and this source's commit (``git diff -M``)."""
        out = subprocess.run(["git", "--git-dir", str(self.git_dir), "diff", "-M", "--name-status", "-z",
                              old_commit, self.provenance.commit or "HEAD", "--", root],
                             capture_output=True)
        if out.returncode != 0:
            raise MgRdfError(f"git diff {old_commit[:7]}: {out.stderr.decode(errors='replace').strip()}")
        fields = out.stdout.decode("utf-8", errors="surrogateescape").split("\0")
        renames, i = [], 0
        while i < len(fields) and fields[i]:
            status = fields[i]
            if status[0] in "RC":
                if status[0] == "R":
                    renames.append((fields[i + 1], fields[i + 2], int(status[1:] or 100)))
                i += 3
            else:
                i += 2
        return renames


def _git_dir_for(location: Path, cache_dir: Path | None) -> Path:
    """The git directory to read: the repository's own, or a bare mirror of a bundle."""
    if location.is_file():  # a bundle: git cannot read one in place, so mirror it once
        cache = (cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mg-rdf")
        st = location.stat()
        key = hashlib.sha1(f"{location}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        mirror = cache / "bundles" / key
        if not (mirror / "HEAD").exists():
            mirror.parent.mkdir(parents=True, exist_ok=True)
            tmp = mirror.with_name(mirror.name + f".tmp{os.getpid()}")
            proc = subprocess.run(["git", "clone", "--quiet", "--mirror", str(location), str(tmp)],
                                  capture_output=True)
            if proc.returncode != 0:
                raise MgRdfError(f"{location}: not a git bundle ({proc.stderr.decode(errors='replace').strip()})")
            os.replace(tmp, mirror) if not mirror.exists() else None
        return mirror
    for candidate in (location / ".git", location):
        if (candidate / "HEAD").exists() and (candidate / "objects").is_dir():
            return candidate
    raise MgRdfError(f"{location}: neither a git repository nor a bundle")


def is_git_location(location: Path) -> bool:
    return location.is_file() or (location / ".git").exists() or (
        (location / "HEAD").exists() and (location / "objects").is_dir())


def open_source(location: Path, rev: str | None = None, commit: str | None = None,
                repository: str = DEFAULT_REPOSITORY) -> CorpusSource:
    """Open ``location`` as a folder or as git, as the user would expect.

    A folder holding ``entities/`` is read as files (its uncommitted edits
    included) unless ``rev`` is given; a bundle or bare repository is read with git.
    """
    if not location.exists():
        raise MgRdfError(f"{location}: no such file or folder")
    if rev is None and location.is_dir() and (location / ENTITY_ROOT).is_dir():
        source = FolderSource(location, commit=commit, repository=repository)
        if commit is None and (location / ".git").exists():
            proc = subprocess.run(["git", "-C", str(location), "rev-parse", "HEAD"], capture_output=True)
            dirty = subprocess.run(["git", "-C", str(location), "status", "--porcelain", "--", ENTITY_ROOT],
                                   capture_output=True).stdout.strip()
            if proc.returncode == 0 and not dirty:
                source.provenance.commit = proc.stdout.decode().strip()
        return source
    if is_git_location(location):
        return GitSource(location, rev or "HEAD", repository=repository)
    raise MgRdfError(f"{location}: not a corpus folder (no {ENTITY_ROOT}/), a git repository or a bundle")
