"""Dumps of the whole dataset, and its VoID description at /.well-known/void.

A dump is written by ``mg_rdf.dump`` (same input, same bytes) the first time
anyone asks for it after a build, into ``STORE/dumps/<build id>/``, atomically,
with a ``.sha256`` file beside it; later requests send the file (with Range
support and a strong ETag that is the content's own hash, so two builds of the
same commit give the same ETag). ``.gz`` files are sent as what they are — a
gzip file to download (``application/gzip``, attachment) — rather than with
``Content-Encoding``, so what an archivist saves is exactly the published file.
If the store path cannot be written, dumps are made in memory instead.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, make_response, render_template, request, send_file
from pyoxigraph import NamedNode, Quad, serialize

from ..dataset import stored_attribution
from ..dump import FORMATS, dump_bytes, dump_to_path
from ..vocab import PREFIXES
from . import current_snapshot
from .negotiation import JSONLD, NTRIPLES, OXIGRAPH_FORMAT, RDFXML, TURTLE, by_key, negotiate
from .pages import dataset_summary, per_build
from .state import Snapshot

bp = Blueprint("dumps", __name__)

NAME = "movement-graph"
LABELS = {"ttl": "Turtle", "nt": "N-Triples", "nq": "N-Quads", "jsonld": "JSON-LD"}
VOID_OFFERS = (TURTLE, JSONLD, NTRIPLES, RDFXML)

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
_preparing: set[Path] = set()


@dataclass
class DumpFile:
    fmt: str
    compressed: bool

    @property
    def filename(self) -> str:
        return f"{NAME}.{self.fmt}" + (".gz" if self.compressed else "")

    @property
    def media_type(self) -> str:
        return FORMATS[self.fmt][1]

    @property
    def content_type(self) -> str:
        if self.compressed:
            return "application/gzip"
        return f"{self.media_type}; charset=utf-8" if self.fmt != "jsonld" else self.media_type


def parse_name(filename: str) -> DumpFile | None:
    """``movement-graph.ttl.gz`` -> DumpFile("ttl", True); None for anything else."""
    stem, dot, rest = filename.partition(".")
    if stem != NAME or not dot:
        return None
    fmt, _, gz = rest.partition(".")
    if fmt not in FORMATS or gz not in ("", "gz"):
        return None
    return DumpFile(fmt, gz == "gz")


def dumps_folder(snap: Snapshot) -> Path:
    """STORE/dumps/<build id>: beside the builds, never inside one (a build is read-only)."""
    return snap.build_dir.parent.parent / "dumps" / snap.version


def _attribution(snap: Snapshot) -> str:
    return snap.facts.get("attribution") or stored_attribution(snap.store, snap.iris)


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def ensure_dump(snap: Snapshot, dump: DumpFile) -> Path:
    """The dump file of this build, written first if it is not there yet."""
    folder = dumps_folder(snap)
    final = folder / dump.filename
    if final.exists():
        return final
    with _lock_for(final):   # one writer per file in this process; rename keeps other processes safe
        if final.exists():
            return final
        folder.mkdir(parents=True, exist_ok=True)
        if dump.compressed:
            dump_to_path(snap.store, dump.fmt, final, snap.iris, _attribution(snap), compress=True)
        else:   # the plain file is the gzip's content, byte for byte
            source = ensure_dump(snap, DumpFile(dump.fmt, True))
            tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
            try:
                with gzip.open(source, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        _write_checksum(final)
        _forget_old_dumps(folder.parent, snap.build_dir.parent)
    return final


def _write_checksum(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    side = path.with_name(path.name + ".sha256")
    tmp = side.with_name(f"{side.name}.tmp{os.getpid()}")
    tmp.write_text(f"{digest.hexdigest()}  {path.name}\n")
    os.replace(tmp, side)


def checksum(path: Path) -> str | None:
    """The SHA-256 recorded beside a dump file (None if not written yet)."""
    try:
        return (path.with_name(path.name + ".sha256")).read_text().split()[0]
    except (OSError, IndexError):
        return None


def _forget_old_dumps(dumps_root: Path, builds: Path) -> None:
    """Remove the dumps of builds the store has collected, and files left half-written
    by a process that died while writing (their names end in .tmp<pid>), with the folders
    of sorted runs it was merging (named likewise)."""
    alive = {p.name for p in builds.iterdir() if not p.name.startswith(".")}
    for old in dumps_root.iterdir():
        if old.is_dir() and old.name not in alive:
            shutil.rmtree(old, ignore_errors=True)
        elif old.is_dir():
            for tmp in old.glob("*.tmp*"):
                pid = tmp.name.rpartition(".tmp")[2]
                if pid.isdigit() and not _running(int(pid)):
                    if tmp.is_dir():
                        shutil.rmtree(tmp, ignore_errors=True)
                    else:
                        tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_in_background(snap: Snapshot) -> None:
    """Start writing this build's gzip dumps so the index can show their sizes soon."""
    folder = dumps_folder(snap)
    with _locks_guard:
        if folder in _preparing:
            return
        _preparing.add(folder)

    def work() -> None:
        for fmt in FORMATS:
            try:
                ensure_dump(snap, DumpFile(fmt, True))
            except OSError:
                return

    threading.Thread(target=work, name=f"dumps-{snap.version}", daemon=True).start()


# --- routes -------------------------------------------------------------------

@bp.get("/dumps/")
def index():
    snap = current_snapshot()
    folder = dumps_folder(snap)
    rows = []
    for fmt in FORMATS:
        gz, plain = folder / f"{NAME}.{fmt}.gz", folder / f"{NAME}.{fmt}"
        rows.append({"fmt": fmt, "label": LABELS[fmt], "media_type": FORMATS[fmt][1],
                     "gz": DumpFile(fmt, True).filename, "plain": DumpFile(fmt, False).filename,
                     "gz_size": gz.stat().st_size if gz.exists() else None,
                     "plain_size": plain.stat().st_size if plain.exists() else None,
                     "sha256": checksum(gz) if gz.exists() else None})
    if any(r["gz_size"] is None for r in rows):
        _prepare_in_background(snap)
    return render_template("dumps.html", rows=rows, summary=dataset_summary(snap), version=snap.version)


@bp.get("/dumps/<filename>")
def download(filename: str):
    snap = current_snapshot()
    wants_checksum = filename.endswith(".sha256")
    dump = parse_name(filename.removesuffix(".sha256"))
    if dump is None:
        abort(404)
    try:
        path = ensure_dump(snap, dump)
    except OSError:
        return _from_memory(snap, dump, wants_checksum)
    if wants_checksum:
        return Response(path.with_name(path.name + ".sha256").read_bytes(), mimetype="text/plain")
    commit = snap.facts.get("commit", "")[:7]
    download_name = f"{NAME}-{commit}.{dump.filename.partition('.')[2]}" if commit else dump.filename
    response = send_file(path, mimetype=dump.content_type, as_attachment=True, download_name=download_name,
                         etag=checksum(path) or True, conditional=True, max_age=0)
    response.headers["Content-Type"] = dump.content_type   # as is: Werkzeug would add a second charset
    return response


def _from_memory(snap: Snapshot, dump: DumpFile, wants_checksum: bool) -> Response:
    """Dumps for a store path this server may not write to."""
    packed = per_build(snap, f"dump:{dump.fmt}",
                       lambda: dump_bytes(snap.store, dump.fmt, snap.iris, _attribution(snap), compress=True))
    body = packed if dump.compressed else gzip.decompress(packed)
    digest = hashlib.sha256(body).hexdigest()
    if wants_checksum:
        return Response(f"{digest}  {dump.filename}\n", mimetype="text/plain")
    response = send_file(io.BytesIO(body), mimetype=dump.content_type, as_attachment=True,
                         download_name=dump.filename, etag=digest, conditional=True, max_age=0)
    response.headers["Content-Type"] = dump.content_type
    return response


@bp.get("/.well-known/void")
def void():
    """The dataset description ({BASE}graph/dataset), where the VoID spec says to look."""
    snap = current_snapshot()
    fmt = request.args.get("format")
    chosen = by_key(fmt, VOID_OFFERS) if fmt else negotiate(request.accept_mimetypes, VOID_OFFERS, TURTLE)
    if chosen is None:
        return Response("Available as text/turtle, application/ld+json, application/n-triples or "
                        "application/rdf+xml.\n", 406, mimetype="text/plain")

    def make() -> bytes:
        quads = snap.store.quads_for_pattern(None, None, None, NamedNode(snap.iris.dataset_graph))
        triples = sorted((Quad(q.subject, q.predicate, q.object) for q in quads), key=str)
        rdf_format = OXIGRAPH_FORMAT[chosen.key]
        prefixes = PREFIXES if chosen in (TURTLE, RDFXML) else None
        return serialize(triples, format=rdf_format, prefixes=prefixes)

    body = per_build(snap, f"void.{chosen.key}", make)
    response = make_response(body)
    response.content_type = chosen.content_type
    response.vary.add("Accept")
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    return response.make_conditional(request)
