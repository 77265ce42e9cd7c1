"""Analysing a corpus: read -> parse -> map -> whole-corpus checks -> audits -> SHACL.

``analyse`` turns a corpus source into mapped entities plus every problem found
(what ``mg-rdf validate`` reports, and what a build loads). With the manifest of
a previous build it re-reads only the files that changed. Each stage is timed,
for the summary line and the benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import manifest
from .audit_cache import AuditOutcome, PendingAudits, audit_pass
from .integrity import CorpusIndex, check
from .mapping import MappedEntity, map_entity
from .problems import Problem, Severity
from .reader import read_entity
from .schema import TYPES
from .source import CorpusSource, SourceFile
from .validation import PendingValidation, ShaclOutcome
from .vocab import DataIris
from .wikidata_links import LINKS_PATH, link_problems

Progress = Callable[[str, int, int], None]   # (stage, done, total)


@dataclass
class Analysis:
    source: CorpusSource
    iris: DataIris
    entities: list[MappedEntity] = field(default_factory=list)
    index: CorpusIndex | None = None
    problems: list[Problem] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: int = 0
    shacl_report: object | None = None
    # path -> (entity, its read+map problems): what the manifest of this build records
    entries: dict[str, tuple[MappedEntity, list[Problem]]] = field(default_factory=dict)
    cached_shacl: dict[str, list[Problem]] = field(default_factory=dict)
    shacl_by_path: dict[str, list[Problem]] = field(default_factory=dict)
    audits: AuditOutcome = field(default_factory=AuditOutcome)
    pending_audits: PendingAudits | None = None

    def shacl_changed(self, path: str) -> bool:
        return self.shacl_by_path.get(path, []) != self.cached_shacl.get(path, [])

    def to_validate(self) -> list[MappedEntity]:
        """The loaded entities SHACL must look at: all but the unchanged ones."""
        assert self.index is not None
        return [e for e in self.index.by_id.values() if not e.stub]

    def take_shacl(self, outcome: "ShaclOutcome") -> None:
        fresh = _without_duplicates(outcome, self.problems)
        for p in fresh:
            self.shacl_by_path.setdefault(p.path, []).append(p)
        assert self.index is not None
        for e in self.index.by_id.values():
            if e.stub:
                cached = self.cached_shacl.get(e.path, [])
                self.shacl_by_path[e.path] = cached
                self.problems.extend(cached)
        self.problems.extend(fresh)

    def join_audits(self) -> None:
        """Wait for audits read in the background (see ``analyse``) and take their outcome."""
        if self.pending_audits is None:
            return
        pending, self.pending_audits = self.pending_audits, None
        t0 = time.perf_counter()
        audits = pending.result(self.source, self.index)
        self.seconds["wait"] = self.seconds.get("wait", 0.0) + time.perf_counter() - t0
        if audits is None:   # started before the index, which turned out other than predicted
            t0 = time.perf_counter()
            assert self.index is not None
            audits = audit_pass(self.source, self.index, self.iris, None)
            audits.seconds = time.perf_counter() - t0
            self.seconds["wait"] += audits.seconds
        self.audits = audits
        self.seconds["audits"] = self.audits.seconds
        self.problems.extend(self.audits.problems)

    def cancel_audits(self) -> None:
        if self.pending_audits is not None:
            self.pending_audits.cancel()
            self.pending_audits = None

    def count(self, severity: Severity) -> int:
        return sum(1 for p in self.problems if p.severity is severity)

    @property
    def violations(self) -> int:
        return self.count(Severity.VIOLATION)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    def sorted_problems(self) -> list[Problem]:
        return sorted(set(self.problems), key=lambda p: (p.path, p.line or 0, p.field or "", p.message))


class _Timer:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    def __call__(self, stage: str) -> "_Stage":
        return _Stage(self.seconds, stage)


class _Stage:
    def __init__(self, seconds: dict[str, float], name: str):
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - self.t0


def analyse(source: CorpusSource, iris: DataIris, *, shacl: bool = True, workers: int | None = None,
            want_report: bool = False, progress: Progress | None = None,
            previous: dict[str, dict] | None = None,
            previous_audits: dict[str, dict] | None = None,
            before_audits: Callable[[Analysis], None] | None = None,
            background_audits: bool = False, stubs: dict[str, tuple] | None = None) -> Analysis:
    """Read, parse, map and check a corpus; run SHACL unless ``shacl`` is False.

    With ``previous`` (the manifest entries of the last build, by path), files whose
    blob is unchanged are not parsed again: their references, tags and problems come
    from the manifest. Entities that point at an id whose existence or type changed
    are mapped again, since their reverse links and SHACL results depend on it.

    SHACL (which needs only the entities) starts in worker processes before the audits are
    read, so the two overlap; ``before_audits`` lets a build start its own at that point.
    With ``background_audits`` the audits are read in a forked process and ``analyse``
    returns at once: ``Analysis.join_audits`` waits for them (a build loads the entities
    meanwhile).

    ``stubs``: a long-running builder's memo of the entities made from manifest entries (path ->
    (BASE, entry, stub)), read and refilled here: an entry equal to the one a stub was made from
    gives the same stub (~70 ms for the real corpus's 827 unchanged files, ~5 ms to compare).
    """
    # a full build's audits start at once, beside the parse (see PendingAudits.early)
    early = PendingAudits.early(source, iris) if background_audits and previous_audits is None else None
    try:
        return _analyse(source, iris, shacl, workers, want_report, progress, previous, previous_audits,
                        before_audits, background_audits, stubs, early)
    except BaseException:
        if early is not None:
            early.cancel()
        raise


def _analyse(source: CorpusSource, iris: DataIris, shacl: bool, workers: int | None, want_report: bool,
             progress: Progress | None, previous: dict[str, dict] | None, previous_audits: dict[str, dict] | None,
             before_audits: Callable[[Analysis], None] | None, background_audits: bool,
             stubs: dict[str, tuple] | None, early: PendingAudits | None) -> Analysis:
    a = Analysis(source, iris)
    timer = _Timer(a.seconds)
    remember = getattr(source, "remember", None)   # a folder: skip reading files whose stat is unchanged
    if remember is not None:
        for entries in (previous or {}, previous_audits or {}):
            remember({path: (tuple(item["stat"]), item["blob"]) for path, item in entries.items() if item.get("stat")})
    with timer("read"):
        files = {f.path: f for f in source.entity_files()}
    a.files = len(files)
    a.problems.extend(source.problems)
    cached_shacl: dict[str, list[Problem]] = {}

    def fresh(f: SourceFile) -> MappedEntity | None:
        t = time.perf_counter()
        result = read_entity(f)
        a.seconds["parse"] = a.seconds.get("parse", 0.0) + time.perf_counter() - t
        a.problems.extend(result.problems)
        if result.record is None:
            return None
        t = time.perf_counter()
        m = map_entity(result.record, iris)
        a.seconds["map"] = a.seconds.get("map", 0.0) + time.perf_counter() - t
        m.source_data = f.data
        a.problems.extend(m.problems)
        a.entries[f.path] = (m, [*result.problems, *m.problems])
        return m if m.type in TYPES else None

    by_path: dict[str, MappedEntity] = {}
    made: dict[str, tuple] = {}
    a.seconds["parse"] = a.seconds["map"] = 0.0   # accumulated per file by fresh()
    with timer("stubs"):  # the files left: unchanged since the previous build (their time, minus fresh's)
        for i, (path, f) in enumerate(sorted(files.items())):
            old = previous.get(path) if previous else None
            if old is not None and old["blob"] == f.blob:
                m, problems, shacl_problems = _stub(path, old, iris, stubs, made)
                a.problems.extend(problems)
                a.entries[path] = (m, problems)
                cached_shacl[path] = shacl_problems
                if m.type in TYPES:
                    by_path[path] = m
            elif (m := fresh(f)) is not None:
                by_path[path] = m
            if progress and i % 50 == 0:
                progress("parse", i, len(files))
    a.seconds["stubs"] -= a.seconds["parse"] + a.seconds["map"]
    if stubs is not None:   # the memo keeps what this build made (paths gone or changed leave it)
        stubs.clear()
        stubs.update(made)
    with timer("check"):
        a.index = CorpusIndex(by_path.values())
        if previous is not None:
            for path in _affected_stubs(a.index, previous):
                cached_shacl.pop(path, None)
                a.problems = [p for p in a.problems if p.path != path]
                m = fresh(files[path])
                if m is not None:
                    by_path[path] = m
            a.index = CorpusIndex(by_path.values())
        a.entities = list(by_path.values())
        a.problems.extend(check(a.index))
        a.problems.extend(link_problems(a.index, LINKS_PATH))
    a.cached_shacl = cached_shacl
    pending = PendingValidation(a.to_validate(), a.index, iris, workers, want_report) if shacl else None
    try:
        if before_audits is not None:
            before_audits(a)
        if background_audits:
            a.pending_audits = early or PendingAudits(source, a.index, iris, previous_audits)
        else:
            with timer("audits"):   # only the audits whose file or looked-up entities changed are read again
                a.audits = audit_pass(source, a.index, iris, previous_audits)
                a.problems.extend(a.audits.problems)
        if pending is not None:
            outcome = pending.result()
            a.take_shacl(outcome)
            a.shacl_report = outcome.report
            a.seconds["validate"] = outcome.seconds
    finally:
        if pending is not None:
            pending.cancel()
    return a


def _stub(path: str, item: dict, iris: DataIris, memo: dict[str, tuple] | None,
          made: dict[str, tuple]) -> tuple[MappedEntity, list[Problem], list[Problem]]:
    """``manifest.stub``, or the stub the memo made from an equal entry (nothing changes a stub
    once made; its problem lists are handed out as copies)."""
    known = memo.get(path) if memo is not None else None
    if known is not None and known[0] == iris.base and (known[1] is item or known[1] == item):
        stub = known[2]
    else:
        stub = manifest.stub(path, item, iris)
    made[path] = (iris.base, item, stub)
    m, problems, shacl = stub
    return m, list(problems), list(shacl)


def _affected_stubs(index: CorpusIndex, previous: dict[str, dict]) -> list[str]:
    """Paths of unchanged files whose graph or SHACL result depends on an id that changed:
    appeared, disappeared, changed type, or moved to another file."""
    before: dict[str, tuple[str, str]] = {}
    for path in sorted(previous):
        item = previous[path]
        before.setdefault(item["id"], (item["type"], path))
    now = {eid: (e.type, e.path) for eid, e in index.by_id.items()}
    delta = {eid for eid in before.keys() | now.keys() if before.get(eid) != now.get(eid)}
    out = []
    for e in index.by_id.values():
        if not e.stub:
            continue
        if e.id in delta or any(r.target_id in delta for r in (*e.references, *e.mentions)):
            out.append(e.path)
    for first, dup in index.duplicates:  # a stub that now loses (or wins) a duplicate id
        if dup.stub and dup.id in delta:
            out.append(dup.path)
    return sorted(set(out))


def _without_duplicates(outcome: ShaclOutcome, known: list[Problem]) -> list[Problem]:
    """SHACL results that say again what an integrity check said more precisely are dropped."""
    said = {(p.path, p.field, p.value) for p in known if p.rule in ("dangling-reference", "reference-type")}
    return [p for p in outcome.problems if (p.path, p.field, p.value) not in said]
