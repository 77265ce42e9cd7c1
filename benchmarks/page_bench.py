"""Entity pages and data documents over HTTP: `mg-rdf serve` on an existing store, 1 and 8 clients.

    .venv/bin/python benchmarks/page_bench.py STORE [SECONDS]

Rows: the HTML page of http_bench.py's five entities (through their /id 303), then every
entity's page, Turtle and JSON-LD document (all ids, shuffled with a fixed seed), each for
SECONDS (default 5) with 1 client and with 8, using http_bench.py's keep-alive clients.
A store built before web/page_data.py (no mg-pages.sqlite) measures the store-reading path.
"""

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from http_bench import entity_page_paths, free_port, load, start, stop  # noqa: E402

from mg_rdf.web import create_app  # noqa: E402

FIVE = ["camp-access-now-ban-biometric-surveillance-global-2021-ongoing", "org-access-now", "org-edri",
        "org-amnesty-international", "org-privacy-international"]


def main() -> int:
    store = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    snap = create_app({"STORE_PATH": store, "TESTING": True}).extensions["mg_rdf.store"].current()
    ids = sorted(snap.entities)
    random.Random(1).shuffle(ids)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, url = start("mg-rdf", [sys.executable, "-c", "from mg_rdf.cli import main; main()", "serve",
                                     "--store", str(store), "--host", "127.0.0.1", "--port", str(port)],
                          "/healthz", Path(tmp), port)
        try:
            sets = {"page (http_bench's 5)": entity_page_paths(url, FIVE),
                    f"page (all {len(ids)})": [f"/page/{e}" for e in ids],
                    f"data .ttl (all {len(ids)})": [f"/data/{e}.ttl" for e in ids],
                    f"data .jsonld (all {len(ids)})": [f"/data/{e}.jsonld" for e in ids]}
            for label, paths in sets.items():
                for n in (1, 8):
                    f = load(url, "GET", paths, None, {}, n, seconds, label, "ours")
                    print(f"{label:<26} {n} client(s) {f.rps:7.1f} req/s  p50 {f.p50_ms:6.2f} ms  "
                          f"p99 {f.p99_ms:6.2f} ms  errors {f.errors}", flush=True)
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
