"""Per-stage build times for the real corpus at HEAD: read, parse, map, validate, load, dump.

    .venv/bin/python benchmarks/build_stages.py            # median of 5 builds
    .venv/bin/python benchmarks/build_stages.py --quick    # one build (what CI runs)
    .venv/bin/python benchmarks/build_stages.py --json out.json

Stages: read (files), parse (YAML), map (to triples), check (whole-corpus
integrity), audits (audit files, in a forked process), validate (SHACL, in a
worker process: its own time), load (the main process writing the store),
wait (the main process waiting for the audits), dump (N-Quads, gzip); audits
and validate overlap the load. A streaming build (stream.py; --stream) has its
parse, map and validate summed over its worker processes, and "stream" is the
wall time of reading, the workers and the bulk load together. "total" is the end-to-end wall time of one
`mg-rdf build` (it includes the store's compaction at the end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyoxigraph import Store

from mg_rdf.build import build
from mg_rdf.dataset import stored_attribution
from mg_rdf.dump import dump_bytes
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "movement-graph"
STAGES = ("read", "parse", "map", "check", "audits", "validate", "stream", "load", "wait", "dump", "total")


def one_run(corpus: Path, workers: int | None, stream: bool | None = None) -> dict[str, float]:
    iris = DataIris()
    with tempfile.TemporaryDirectory() as tmp:
        result = build(FolderSource(corpus), Path(tmp) / "store", iris, workers=workers, stream=stream)
        times = dict(result.seconds)
        times["total"] = result.wall
        store = Store.read_only(str(result.store_path))
        t0 = time.perf_counter()
        dump_bytes(store, "nq", iris, stored_attribution(store, iris), compress=True)
        times["dump"] = time.perf_counter() - t0
        times["triples"] = result.triples
        del store
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one run")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--stream", dest="stream", action="store_true", default=None,
                    help="the streaming build (stream.py) whatever the corpus size")
    ap.add_argument("--no-stream", dest="stream", action="store_false",
                    help="the in-memory build (analysis.py) whatever the corpus size")
    args = ap.parse_args()
    if not (args.corpus / "entities").is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    runs = [one_run(args.corpus, args.workers, args.stream) for _ in range(1 if args.quick else args.runs)]
    med = {s: statistics.median(r.get(s, 0.0) for r in runs) for s in STAGES}
    print(f"mg-rdf build of {args.corpus} ({int(runs[0]['triples'])} triples), "
          f"median of {len(runs)} run(s), seconds")
    print(" | ".join(f"{s:>8}" for s in STAGES))
    print(" | ".join(f"{med[s]:8.2f}" for s in STAGES))
    if args.json:
        args.json.write_text(json.dumps({"median": med, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
