"""What a build remembers about each file, so the next build can skip unchanged ones.

A manifest sits beside each build (``builds/<id>.manifest.json.gz``): for every
entity file its git blob hash and what reading, mapping and SHACL said about it
(references, mentions, tags, problems) — everything the whole-corpus steps need,
without the triples themselves. It is only trusted when its fingerprint matches:
the same mg-rdf code, shapes, ontology, BASE and corpus provenance.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode

from .config import ONTOLOGY_PATH, SHAPES_PATH
from .mapping import MappedEntity, Reference
from .problems import Problem, Severity
from .source import Provenance
from .vocab import DataIris

FORMAT = 1
# The modules whose code decides what a file becomes: a change to any of them
# invalidates every manifest.
_PIPELINE = ("reader.py", "mapping.py", "schema.py", "links.py", "dates.py", "vocab.py", "assembly.py",
             "integrity.py", "validation.py", "dataset.py", "manifest.py", "build.py")


def manifest_path(build_dir: Path) -> Path:
    return build_dir.with_name(build_dir.name + ".manifest.json.gz")


def fingerprint(iris: DataIris, provenance: Provenance) -> str:
    h = hashlib.sha1(f"{FORMAT}\0{iris.base}\0{provenance.repository}\0{provenance.commit}".encode())
    here = Path(__file__).parent
    for name in _PIPELINE:
        h.update((here / name).read_bytes())
    h.update(SHAPES_PATH.read_bytes())
    h.update(ONTOLOGY_PATH.read_bytes())
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


def write(path: Path, fp: str, entries: dict[str, dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        json.dump({"format": FORMAT, "fingerprint": fp, "entities": entries}, fh, separators=(",", ":"))
    os.replace(tmp, path)


def read(path: Path, fp: str) -> dict[str, dict[str, Any]] | None:
    """The entries of a manifest written with fingerprint ``fp``, or None."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, EOFError):
        return None
    if data.get("format") != FORMAT or data.get("fingerprint") != fp:
        return None
    return data["entities"]
