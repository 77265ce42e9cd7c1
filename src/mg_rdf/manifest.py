"""What a build remembers about each file, so the next build can skip unchanged ones.

A manifest sits beside each build (``builds/<id>.manifest``): for every
entity file its git blob hash and what reading, mapping and SHACL said about it
(references, mentions, tags, problems) — everything the whole-corpus steps need,
without the triples themselves. It is only trusted when its fingerprint matches:
the same mg-rdf code, shapes, ontology, BASE and corpus provenance.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode

from .config import ONTOLOGY_FILES, SHAPES_FILES
from .mapping import MappedEntity, Reference
from .problems import Problem, Severity
from .source import Provenance
from .vocab import DataIris

FORMAT = 3
# The modules whose code decides what a file becomes: a change to any of them
# invalidates every manifest.
_PIPELINE = ("reader.py", "mapping.py", "schema.py", "links.py", "dates.py", "vocab.py", "assembly.py",
             "integrity.py", "validation.py", "dataset.py", "manifest.py", "build.py", "analysis.py", "audits.py",
             "audit_cache.py", "wikidata_links.py", "stream.py")


def manifest_path(build_dir: Path) -> Path:
    return build_dir.with_name(build_dir.name + ".manifest")


def fingerprint(iris: DataIris, provenance: Provenance) -> str:
    h = hashlib.sha1(f"{FORMAT}\0{iris.base}\0{provenance.repository}\0{provenance.commit}".encode())
    here = Path(__file__).parent
    for name in _PIPELINE:
        h.update((here / name).read_bytes())
    for path in (*SHAPES_FILES, *ONTOLOGY_FILES):
        h.update(path.read_bytes())
    return h.hexdigest()


def _problem(p: Problem) -> list:
    return [p.path, p.line, p.field, p.message, p.value, p.severity.value, p.rule]


def _unproblem(row: list) -> Problem:
    path, line, field, message, value, severity, rule = row
    return Problem(path, line, field, message, value, Severity(severity), rule)


def _ref(r: Reference) -> list:
    return [r.field, r.prop, r.target_id, r.line, list(r.targets)]


def entry(e: MappedEntity, problems: list[Problem], shacl: list[Problem]) -> dict[str, Any]:
    """The manifest entry of one mapped entity."""
    return {"id": e.id, "type": e.type, "blob": e.blob, "name": e.name, "last_updated": e.last_updated,
            "references": [_ref(r) for r in e.references], "mentions": [_ref(r) for r in e.mentions],
            "tags": e.tags, "problems": [_problem(p) for p in problems], "shacl": [_problem(p) for p in shacl]}


def stub(path: str, item: dict[str, Any], iris: DataIris) -> tuple[MappedEntity, list[Problem], list[Problem]]:
    """A MappedEntity without triples, rebuilt from its manifest entry."""
    eid = item["id"]
    e = MappedEntity(eid, item["type"], path, NamedNode(iris.entity(eid)), name=item["name"], blob=item["blob"],
                     last_updated=item["last_updated"], stub=True)
    e.references = [Reference(eid, f, p, t, ln, tuple(ts)) for f, p, t, ln, ts in item["references"]]
    e.mentions = [Reference(eid, f, p, t, ln, tuple(ts)) for f, p, t, ln, ts in item["mentions"]]
    e.tags = list(item["tags"])
    return e, [_unproblem(r) for r in item["problems"]], [_unproblem(r) for r in item["shacl"]]


class Encoded:
    """A manifest made ready to write: its data (what ``read_all`` gives back), pickled, and the
    blobs of its entity files."""

    def __init__(self, fp: str, entries: dict[str, dict[str, Any]],
                 audits: dict[str, dict[str, Any]] | None = None, triples: int | None = None):
        self.data = {"format": FORMAT, "fingerprint": fp, "entities": entries, "audits": audits or {},
                     "triples": triples}
        self.pickled = pickle.dumps(self.data, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs = "\n".join(sorted({item["blob"] for item in entries.values()}))

    def write(self, path: Path) -> dict[str, Any]:
        """Write it at ``path`` (and the blobs beside it); returns its data."""
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(self.pickled)
        os.replace(tmp, path)
        # the blobs alone, beside it: garbage collection of kept sources reads only these
        blobs = path.with_name(path.name + ".blobs")
        tmp = blobs.with_name(blobs.name + f".tmp{os.getpid()}")
        tmp.write_text(self.blobs)
        os.replace(tmp, blobs)
        return self.data


def write(path: Path, fp: str, entries: dict[str, dict[str, Any]],
          audits: dict[str, dict[str, Any]] | None = None, triples: int | None = None) -> dict[str, Any]:
    """Write a manifest (pickled plain data: it is the store's own cache, read by nobody else,
    and pickle is ~10x faster than JSON here, which matters for a one-file rebuild).
    ``audits``: per audit file, what its graph was made from (see audit_cache.py); ``triples``:
    the quads the dataset description states (the next build adds what it changes). Returns
    what it wrote (what ``read_all`` gives back)."""
    return Encoded(fp, entries, audits, triples).write(path)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def read(path: Path, fp: str) -> dict[str, dict[str, Any]] | None:
    """The entries of a manifest written with fingerprint ``fp``, or None."""
    data = read_all(path, fp)
    return None if data is None else data["entities"]


def read_all(path: Path, fp: str) -> dict[str, Any] | None:
    """The whole manifest (entities and audits) when written with fingerprint ``fp``."""
    data = _load(path)
    if data is None or data.get("fingerprint") != fp:
        return None
    return data


def blobs_of(build_dir: Path) -> set[str] | None:
    """The git blobs of the entity files a build read (None when it did not record them)."""
    try:
        return set((manifest_path(build_dir).with_name(manifest_path(build_dir).name + ".blobs"))
                   .read_text().split())
    except OSError:
        return None
