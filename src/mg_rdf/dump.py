"""Deterministic dumps of a built store: Turtle, N-Triples, N-Quads, JSON-LD.

Same store content, same bytes: quads are sorted by their N-Quads text before
serialising, gzip is written without a timestamp or file name, and the
wall-clock build record is left out (it is the one thing that differs between
two builds of the same input). Triple formats hold the union of all graphs
(each triple once); N-Quads keeps the per-entity graphs and their provenance.

Memory is bounded whatever the store's size: the N-Quads (or, for the triple
formats, N-Triples) lines are sorted in runs of at most ``run_bytes`` bytes; a
store whose lines fit in one run is sorted in memory and written at once (no
temporary file), a larger one spills each sorted run to a temporary file beside
the output and merges the runs (an external merge sort). Turtle and JSON-LD are
Oxigraph's serialisers fed with the merged N-Triples, parsed back one triple at
a time.
"""

from __future__ import annotations

import gzip
import heapq
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from pyoxigraph import BlankNode, DefaultGraph, NamedNode, RdfFormat, Store, parse, serialize

from .vocab import PREFIXES, DataIris

# gzip's own default: level 9 took 1.6x as long for 1.6% fewer bytes (72 MB of N-Quads: 2.8 s vs
# 1.8 s, 7.65 MB vs 7.77 MB)
GZIP_LEVEL = 6

# Bytes of lines sorted in memory at a time. The real corpus (73 MB of N-Quads) is one run. A
# dump adds about 3x this to the process (the lines as Python bytes objects, the list, a block of
# Oxigraph's output, Oxigraph's reading): 100x, 426-446 MB max RSS, of which 67 MB is the open store.
RUN_BYTES = 128 << 20
_BLOCK = 4 << 20      # Oxigraph's output is split into lines this many bytes at a time
_WRITE = 1 << 20      # merged lines are written in batches of about this many bytes
_READ = 1 << 16       # read buffer of each run file during the merge
FAN_IN = 128          # runs merged at once; more are first merged FAN_IN at a time into longer runs

FORMATS: dict[str, tuple[RdfFormat, str]] = {
    "ttl": (RdfFormat.TURTLE, "text/turtle"),
    "nt": (RdfFormat.N_TRIPLES, "application/n-triples"),
    "nq": (RdfFormat.N_QUADS, "application/n-quads"),
    "jsonld": (RdfFormat.JSON_LD, "application/ld+json"),
}


def header(attribution: str) -> bytes:
    return (f"# {attribution}\n# Built by mg-rdf; licence and provenance are stated in the dataset "
            "description (void:Dataset) inside.\n").encode()


class _Runs:
    """Lines gathered into sorted runs of at most ``run_bytes`` bytes, spilled to files in
    ``folder`` beyond the first; ``merged()`` gives every line once in byte order (for triples,
    each distinct line once). Bytes compare as their text does: UTF-8 keeps code point order."""

    def __init__(self, run_bytes: int, folder: Path | None, distinct: bool, stack: ExitStack):
        self.run_bytes = max(1, run_bytes)
        self.folder = folder
        self.distinct = distinct
        self.stack = stack
        self.lines: list[bytes] = []
        self.size = 0
        self.files: list[Path] = []
        self._dir: Path | None = None
        self._made = 0

    def add(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.lines.append(line)
            self.size += len(line)
            if self.size >= self.run_bytes:
                self._spill()

    def extend(self, lines: list[bytes], size: int) -> None:
        """Add a block of lines of ``size`` bytes in all (faster than ``add`` line by line)."""
        if self.size + size < self.run_bytes:
            self.lines.extend(lines)
            self.size += size
        else:
            self.add(lines)

    def _sorted(self) -> list[bytes]:
        lines = list(set(self.lines)) if self.distinct else self.lines
        lines.sort()
        return lines

    def _new_run(self) -> Path:
        if self._dir is None:
            # named like a half-written dump (".tmp<pid>"): the web app removes one a dead process left
            self._dir = Path(self.stack.enter_context(tempfile.TemporaryDirectory(
                prefix="mg-rdf-dump-runs.", suffix=f".tmp{os.getpid()}", dir=self.folder)))
        self._made += 1
        return self._dir / f"run{self._made:06d}"

    def _spill(self) -> None:
        run = self._new_run()
        with open(run, "wb") as fh:
            fh.writelines(self._sorted())
        self.files.append(run)
        self.lines = []
        self.size = 0

    def merged(self) -> Iterator[bytes]:
        last = self._sorted()
        self.lines = []
        if not self.files:
            return iter(last)
        fan_in = max(2, FAN_IN)
        while len(self.files) + 1 > fan_in:   # bounded memory and open files for any number of runs
            group, self.files = self.files[:fan_in], self.files[fan_in:]
            run = self._new_run()
            with ExitStack() as readers, open(run, "wb") as fh:
                _write_lines(fh, self._merge([readers.enter_context(open(f, "rb", buffering=_READ)) for f in group]))
            for f in group:
                f.unlink()
            self.files.append(run)
        readers = [self.stack.enter_context(open(f, "rb", buffering=_READ)) for f in self.files]
        return self._merge([*readers, iter(last)])

    def _merge(self, sources: list[Iterable[bytes]]) -> Iterator[bytes]:
        merged = heapq.merge(*sources)
        return _distinct(merged) if self.distinct else merged


def _distinct(lines: Iterator[bytes]) -> Iterator[bytes]:
    previous = None
    for line in lines:
        if line != previous:
            yield line
            previous = line


class _Collector:
    """A binary file for ``Store.dump``: cuts Oxigraph's N-Quads into lines, block by block, drops
    the build record's, keeps each triple (for triple formats) and hands them to the runs."""

    def __init__(self, runs: _Runs, skip: bytes, triples: bool):
        self.runs = runs
        self.skip = skip
        self.triples = triples
        self.chunks: list[bytes] = []
        self.size = 0
        self.rest = b""

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.size += len(data)
        if self.size >= _BLOCK:
            self._block(final=False)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._block(final=True)

    def _block(self, final: bool) -> None:
        data = self.rest + b"".join(self.chunks)
        self.chunks = []
        self.size = 0
        cut = len(data) if final else data.rfind(b"\n") + 1
        self.rest = data[cut:]
        skip = self.skip
        lines = [line for line in data[:cut].splitlines(keepends=True) if not line.endswith(skip)]
        if self.triples:
            # every graph name is an IRI (checked first), and an IRI has no space: the graph is
            # what follows the line's last " <"
            lines = [line[:line.rindex(b" <")] + b" .\n" for line in lines]
        self.runs.extend(lines, sum(map(len, lines)))


def _collect(store: Store, iris: DataIris, runs: _Runs, triples: bool) -> bool:
    """Every quad of the named graphs but the build record, as N-Quads lines (N-Triples lines for
    the triple formats) into ``runs``. A local store is serialised by Oxigraph in one call: ~1 s
    for the real corpus instead of ~3 s through Python quad objects. True if it took quad
    objects."""
    build = NamedNode(iris.base + "graph/build")
    if (isinstance(store, Store)
            and next(iter(store.quads_for_pattern(None, None, None, DefaultGraph())), None) is None
            and not (triples and any(isinstance(g, BlankNode) for g in store.named_graphs()))):
        collector = _Collector(runs, f" <{build.value}> .\n".encode(), triples)
        store.dump(collector, RdfFormat.N_QUADS)
        collector.close()
        return False
    # a remote store, or default-graph quads (no line tells them apart), or a blank graph name
    # (no IRI to cut at): quad objects, whose text is the line Oxigraph writes, less " .\n"
    runs.add(((str(q.triple) if triples else str(q)) + " .\n").encode()
             for q in store.quads_for_pattern(None, None, None, None)
             if q.graph_name != build and not isinstance(q.graph_name, DefaultGraph))
    return True


class _LineReader:
    """A binary file reading from an iterator of lines (what ``parse`` reads the merge from)."""

    def __init__(self, lines: Iterator[bytes]):
        self.lines = lines
        self.rest = b""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data, self.rest = self.rest + b"".join(self.lines), b""
            return data
        parts = [self.rest]
        have = len(self.rest)
        for line in self.lines:
            parts.append(line)
            have += len(line)
            if have >= size:
                break
        data = b"".join(parts)
        self.rest = data[size:]
        return data[:size]


def _write_lines(out: IO[bytes], lines: Iterator[bytes]) -> None:
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= _WRITE:
            out.write(b"".join(batch))
            batch = []
            size = 0
    out.write(b"".join(batch))


def write_dump(store: Store, fmt: str, out: IO[bytes], iris: DataIris, attribution: str, *,
               run_bytes: int | None = None, tmp_dir: Path | None = None) -> None:
    """Serialise the dataset to ``out`` in ``fmt`` (ttl|nt|nq|jsonld), sorting at most
    ``run_bytes`` (default ``RUN_BYTES``) of lines in memory at a time; runs beyond the first go
    to a temporary folder in ``tmp_dir`` (default: the system's), removed afterwards whatever
    happens."""
    rdf_format, _ = FORMATS[fmt]
    triples = fmt != "nq"
    with ExitStack() as stack:
        runs = _Runs(RUN_BYTES if run_bytes is None else run_bytes, tmp_dir, distinct=triples, stack=stack)
        by_quads = _collect(store, iris, runs, triples)
        lines = runs.merged()
        if fmt != "jsonld":
            out.write(header(attribution))
        if fmt in ("nq", "nt"):
            _write_lines(out, lines)
            if by_quads:
                # these were written by Oxigraph's serialize, which flushes its output at the end:
                # a gzip stream flushed there is not the same bytes (Turtle and JSON-LD still are)
                out.flush()
            return
        prefixes = {**PREFIXES, "id": iris.base + "id/", "tag": iris.base + "tag/"}
        # the lines are Oxigraph's own N-Triples: read back leniently, as they were written
        parsed = parse(_LineReader(lines), RdfFormat.N_TRIPLES, lenient=True)
        serialize((q.triple for q in parsed), out, rdf_format, prefixes=prefixes)


def dump_to_path(store: Store, fmt: str, path: Path, iris: DataIris, attribution: str, compress: bool, *,
                 run_bytes: int | None = None) -> Path:
    """Write a dump file atomically (write to a temporary name, then rename); sorted runs that do
    not fit in memory are spilled beside it."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as raw:
            if compress:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz:
                    write_dump(store, fmt, gz, iris, attribution,  # type: ignore[arg-type]
                               run_bytes=run_bytes, tmp_dir=path.parent)
            else:
                write_dump(store, fmt, raw, iris, attribution, run_bytes=run_bytes, tmp_dir=path.parent)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def dump_bytes(store: Store, fmt: str, iris: DataIris, attribution: str, compress: bool = False, *,
               run_bytes: int | None = None) -> bytes:
    buf = io.BytesIO()
    if compress:
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=GZIP_LEVEL) as gz:
            write_dump(store, fmt, gz, iris, attribution, run_bytes=run_bytes)  # type: ignore[arg-type]
    else:
        write_dump(store, fmt, buf, iris, attribution, run_bytes=run_bytes)
    return buf.getvalue()
