"""CPU time of every named query (queries/*.rq) with its example arguments, on a built store.

    .venv/bin/python benchmarks/named_queries_bench.py --store PATH
    .venv/bin/python benchmarks/named_queries_bench.py            # builds ../shared's corpus first

Median of 5 runs of each query, in the process (no HTTP), as thread CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mg_rdf import config
from mg_rdf.build import build
from mg_rdf.named_queries import bind_arguments, load_queries, run
from mg_rdf.source import FolderSource
from mg_rdf.store import open_read_only
from mg_rdf.vocab import DataIris

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "movement-graph"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args()
    iris = DataIris()
    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store
        if store_path is None:
            store_path = Path(tmp) / "store"
            build(FolderSource(args.corpus), store_path, iris)
        store = open_read_only(store_path)
        print(f"{'query':<32} {'rows':>6} {'ms CPU (median of 5)':>22}")
        for q in load_queries(config.QUERIES_DIR):
            bound = bind_arguments(q, q.example_arguments(), iris)
            times = []
            for _ in range(5):
                t = time.thread_time()
                answer = run(store, q, bound)
                times.append(time.thread_time() - t)
            print(f"{q.name:<32} {len(answer.rows):>6} {statistics.median(times) * 1000:>22.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
