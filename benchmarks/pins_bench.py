"""Three pins of the real history in one store: build time and store size per pin.

    .venv/bin/python benchmarks/pins_bench.py             # median of 3 fresh builds, then a rebuild
    .venv/bin/python benchmarks/pins_bench.py --quick     # one fresh build and one rebuild
    .venv/bin/python benchmarks/pins_bench.py --separate  # also each rev alone, for comparison
    .venv/bin/python benchmarks/pins_bench.py --json out.json

Builds ../shared/corpus/movement-graph.bundle at v1.0.0, v2.0.0 and HEAD (the current
pin) into a new store, the way `mg-rdf build BUNDLE --rev v1.0.0 --rev v2.0.0 --rev HEAD`
does. Per pin: seconds (reading, mapping, loading and validating that pin; validation
overlaps the load), entities, triples, and the size of its Oxigraph directory and
manifest. Then the diffs between consecutive pins and the whole build's wall time. A
"rebuild" builds the same pins again into the same store: each pin starts from the
pin of the same commit (a hard-linked copy) and the diffs are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mg_rdf import pins
from mg_rdf.build import build
from mg_rdf.manifest import manifest_path
from mg_rdf.pin_build import build_pins
from mg_rdf.source import GitSource
from mg_rdf.vocab import DataIris

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT.parent / "shared" / "corpus" / "movement-graph.bundle"
REVS = ["v1.0.0", "v2.0.0", "HEAD"]


def size(path: Path) -> int:
    """Bytes of a file or of every file under a directory (hard links counted in each build)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one_build(bundle: Path, store: Path, workers: int | None) -> dict:
    t0 = time.perf_counter()
    result = build_pins(bundle, REVS, store, DataIris(), workers=workers)
    wall = time.perf_counter() - t0
    index = pins.read_index(result.store_path)
    out = {"wall": wall, "diffs": result.diff_seconds, "pins": {}}
    for p in index.pins:
        load = result.loads[p.key]
        directory = index.directory(p)
        out["pins"][p.name] = {"seconds": load.seconds, "incremental": load.previous is not None,
                               "entities": p.entities, "triples": p.triples, "store_bytes": size(directory),
                               "manifest_bytes": size(manifest_path(directory))}
    out["diff_files_bytes"] = size(pins.pins_dir(result.store_path) / pins.DIFFS_DIR)
    out["sources_bytes"] = size(store / "sources")
    return out


def separate_builds(bundle: Path, workers: int | None) -> dict[str, dict]:
    out = {}
    for rev in REVS:
        with tempfile.TemporaryDirectory() as tmp:
            r = build(GitSource(bundle, rev), Path(tmp) / "store", DataIris(), workers=workers)
            out[rev] = {"wall": r.wall, "store_bytes": size(r.store_path)}
    return out


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=BUNDLE)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one fresh build")
    ap.add_argument("--separate", action="store_true", help="also build each rev alone into its own store")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    if not args.bundle.is_file():
        print(f"no bundle at {args.bundle}", file=sys.stderr)
        return 2
    runs = 1 if args.quick else args.runs
    fresh, rebuilds = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store"
            fresh.append(one_build(args.bundle, store, args.workers))
            rebuilds.append(one_build(args.bundle, store, args.workers))
    figures = {"fresh": fresh, "rebuild": rebuilds}

    def med(rows: list[dict], *keys: str) -> float:
        values = []
        for row in rows:
            for k in keys:
                row = row[k]
            values.append(row)
        return statistics.median(values)

    print(f"three pins of {args.bundle.name} into one store, median of {runs} run(s)")
    print(f"{'pin':<8} {'entities':>8} {'triples':>8} {'fresh s':>8} {'rebuild s':>9} {'store':>9} {'manifest':>9}")
    for rev in REVS:
        p = fresh[0]["pins"][rev]
        print(f"{rev:<8} {p['entities']:>8} {p['triples']:>8} {med(fresh, 'pins', rev, 'seconds'):>8.2f} "
              f"{med(rebuilds, 'pins', rev, 'seconds'):>9.2f} {mb(p['store_bytes']):>9} {mb(p['manifest_bytes']):>9}")
    print(f"diffs: fresh {med(fresh, 'diffs'):.2f} s, rebuild {med(rebuilds, 'diffs'):.2f} s; "
          f"diff files {mb(fresh[0]['diff_files_bytes'])}; kept sources {mb(fresh[0]['sources_bytes'])}")
    print(f"whole build: fresh {med(fresh, 'wall'):.2f} s, rebuild {med(rebuilds, 'wall'):.2f} s")
    if args.separate:
        figures["separate"] = separate_builds(args.bundle, args.workers)
        for rev, f in figures["separate"].items():
            print(f"alone: {rev:<8} {f['wall']:.2f} s, {mb(f['store_bytes'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
