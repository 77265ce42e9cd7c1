"""The benchmark suite: build stages at 1x, 10x and 100x the real corpus, incremental
rebuilds, memory, store size, and /sparql side by side with `oxigraph serve`.

    .venv/bin/python benchmarks/suite.py                    # sizes 1 and 10, HTTP 5 s per row
    .venv/bin/python benchmarks/suite.py --sizes 1,10,100   # the 100x corpus too (long: see docs)
    .venv/bin/python benchmarks/suite.py --quick            # the real corpus only, a few seconds of HTTP
    .venv/bin/python benchmarks/suite.py --json out.json

Each build runs in a fresh process and reports per-stage seconds and total wall
time, peak memory (the summed PSS of the build's process and its forked workers,
sampled every 0.2 s, and each one's max RSS) and the store's size; then a dump
(N-Quads, gzip; its own peak), an incremental rebuild after editing one entity, and three
more as ``serve --watch`` makes them (BuildMemory; the median: seconds until STORE/current
names the new build, and the whole build), then five edits under ``serve --watch``'s own
watcher (the median: seconds from the file's save to STORE/current naming its build).
A full build streams (src/mg_rdf/stream.py): read is the main process reading files;
parse, map and validate are the workers' own seconds summed over all workers (they
run in parallel, so they exceed the wall time); stream is the wall time of reading,
the workers and the bulk load together; wait is the main process waiting for
workers (or audits); check the whole-corpus checks; load the main process's own
loading time (bulk load, reverse links, mentions, provenance, audits). Synthetic corpora come from benchmarks/multiply_corpus.py
and have no audits; with size 1 the real corpus is also built as it is, its audits included
(the row "1x + N audits": the HEAD build of issue 5's 3 s target).
The HTTP part is benchmarks/http_bench.py's, on the real corpus (mg-rdf measured once its
serving processes answer from their in-memory copies of the build). Then the remote
store: a writable `oxigraph serve` is started, `mg-rdf build CORPUS --store
http://…/query` is timed on a copy of the corpus (a first build, a rebuild with nothing
changed, one after editing one entity, one with --full; each says how many graphs it sent), and
`mg-rdf serve --store http://…/query` answers the same small queries, side by side
with that oxigraph server answering them directly (what going through mg-rdf costs);
its entity pages are timed too. Nothing here asserts a time: the machine is shared
and noisy; compare columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import http_bench  # noqa: E402
from multiply_corpus import multiply  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "movement-graph"

# Runs in the child process: one full build, a dump, one incremental rebuild.
CHILD = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
from pyoxigraph import Store
from mg_rdf.build import BuildMemory, build
from mg_rdf.dataset import stored_attribution
from mg_rdf.dump import dump_to_path
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris
from mg_rdf.watch import CorpusWatcher


class Memory(threading.Thread):
    # the summed PSS and RSS of this process and its children (forked workers), every 0.2 s
    def __init__(self):
        super().__init__(daemon=True)
        self.peak_pss = self.peak_rss = 0
        self.start()

    def tree(self):
        kids = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(d)
        out, todo = [], [str(os.getpid())]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(int(p), [])
        return out

    def run(self):
        while True:
            pss = rss = 0
            for p in self.tree():
                try:
                    for line in open(f"/proc/{p}/smaps_rollup"):
                        if line.startswith("Rss:"):
                            rss += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
                except OSError:
                    pass
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            time.sleep(0.2)

    def take(self):
        out = (self.peak_pss / 1024, self.peak_rss / 1024)
        self.peak_pss = self.peak_rss = 0
        return out


corpus, store = Path(sys.argv[1]), Path(sys.argv[2])
iris = DataIris()
mem = Memory()
r = build(FolderSource(corpus), store, iris, full=True)
out = {"stages": dict(r.seconds), "wall": r.wall, "triples": r.triples, "entities": sum(r.entities_by_type.values()),
       "violations": r.analysis.violations, "warnings": r.analysis.warnings,
       "store_bytes": sum(f.stat().st_size for f in r.store_path.iterdir())}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
out["build_pss_mb"], out["build_rss_sum_mb"] = mem.take()
del r
s = Store.read_only(str(store / "current"))
t = time.perf_counter()
dump_to_path(s, "nq", store.parent / "dump.nq.gz", iris, stored_attribution(s, iris), True)
out["dump"] = time.perf_counter() - t
del s
out["dump_pss_mb"], _ = mem.take()
edited = sorted((corpus / "entities" / "organizations").glob("*.md"))[0]
text = edited.read_text()
edited.write_text(text.replace("\nname: ", "\nname: Edited ", 1))
try:
    inc = build(FolderSource(corpus), store, iris)
    out["incremental"] = {"wall": inc.wall, "rebuilt": inc.rebuilt, "stages": dict(inc.seconds)}
    out["incremental_pss_mb"], _ = mem.take()
    # as serve --watch builds: what one build knows kept for the next (BuildMemory), median of 3 edits
    memory = BuildMemory()
    memory.recall(store, FolderSource(corpus), iris)
    walls, swaps = [], []
    for i in range(3):
        edited.write_text(text.replace("\nname: ", f"\nname: Watched{i} ", 1))
        w = build(FolderSource(corpus), store, iris, workers=1, memory=memory)
        walls.append(w.wall)
        swaps.append(w.swapped)
    memory.forget()
    out["watched"] = {"wall": sorted(walls)[1], "current": sorted(swaps)[1]}
    # serve --watch's own watcher (a thread here): from an edit's save to STORE/current naming its
    # build, notification, quiet wait and listing included; the median of 5 edits
    watcher = CorpusWatcher(corpus, store, iris)
    watcher.start()
    watcher.watching.wait(600)
    saved = []
    try:
        for i in range(5):
            before = os.readlink(store / "current")
            time.sleep(0.25)
            t = time.perf_counter()
            edited.write_text(text.replace("\nname: ", f"\nname: Saved{i} ", 1))
            while os.readlink(store / "current") == before:
                if time.perf_counter() - t > 600:
                    raise RuntimeError("the watcher never applied an edit")
                time.sleep(0.001)
            saved.append(time.perf_counter() - t)
    finally:
        watcher.stop()
        watcher.join()
        if watcher.memory is not None:
            watcher.memory.forget()
    out["watched"]["saved"] = sorted(saved)[2]
finally:
    edited.write_text(text)
print("RESULT " + json.dumps(out))
"""


def run_build(corpus: Path, work: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(work / "store")],
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"the build of {corpus} failed:\n{proc.stderr[-3000:]}")


STAGES = ("read", "parse", "map", "validate", "stream", "wait", "check", "audits", "load")


def build_table(results: dict[str, dict]) -> str:
    rows = [["corpus", "entities", "triples", *STAGES, "total", "dump", "incremental (1 edit)",
             "watcher (1 edit): saved -> current / current after build start / build",
             "build: peak MB all processes (PSS) / main RSS / largest worker RSS", "dump peak MB", "store MB"]]
    for label, r in results.items():
        st = r["stages"]
        rows.append([label, str(r["entities"]), str(r["triples"]), *(f"{st.get(s, 0):.2f}" for s in STAGES),
                     f"{r['wall']:.2f}", f"{r['dump']:.2f}",
                     f"{r['incremental']['wall']:.3f} s ({r['incremental']['rebuilt']} re-read)",
                     f"{r['watched']['saved']:.3f} / {r['watched']['current']:.3f} / {r['watched']['wall']:.3f} s",
                     f"{r['build_pss_mb']:.0f} / {r['peak_rss_mb']:.0f} / {r['worker_peak_rss_mb']:.0f}",
                     f"{r['dump_pss_mb']:.0f}", f"{r['store_bytes'] / 1e6:.0f}"])
    return http_bench.table(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--sizes", default="1,10", help="comma-separated multiples of the corpus (1,10,100)")
    ap.add_argument("--quick", action="store_true", help="the real corpus only, 1 s per HTTP row")
    ap.add_argument("--seconds", type=float, default=5.0, help="HTTP load time per row")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-remote", action="store_true", help="skip the remote-store part")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.corpus / "entities").is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    sizes = [1] if args.quick else [int(x) for x in args.sizes.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mg-suite-") as tmp:
        tmp_path = Path(tmp)
        for size in sizes:
            work = tmp_path / f"x{size}"
            work.mkdir()
            corpus = work / "corpus"
            t0 = time.perf_counter()
            multiply(args.corpus, corpus, size)
            print(f"{size}x corpus written in {time.perf_counter() - t0:.1f} s; building …", flush=True)
            results[f"{size}x"] = run_build(corpus, work)
            print(build_table({f"{size}x": results[f"{size}x"]}), flush=True)
        if 1 in sizes and (args.corpus / "audits").is_dir():
            # the real corpus as it is, its audits included (the synthetic copies have none)
            work = tmp_path / "real"
            work.mkdir()
            for part in ("entities", "audits"):
                shutil.copytree(args.corpus / part, work / "corpus" / part)
            label = f"1x + {len(list((work / 'corpus' / 'audits').rglob('*.md')))} audits"
            print("building the real corpus with its audits …", flush=True)
            results[label] = run_build(work / "corpus", work)
            print(build_table({label: results[label]}), flush=True)
        http = None
        if not args.no_http:
            store = tmp_path / "x1" / "store" if "1x" in results else None
            if store is None:
                print("HTTP figures need size 1", file=sys.stderr)
            else:
                http = run_http(store, 1.0 if args.quick else args.seconds, tmp_path)
        remote = None
        if not args.no_remote:
            remote = run_remote(args.corpus, 1.0 if args.quick else args.seconds, tmp_path)
    print(f"\nmg-rdf benchmark suite, {os.cpu_count()} CPUs, seconds unless stated\n")
    print(build_table(results))
    if http:
        print()
        http_bench.report(http, 1.0 if args.quick else args.seconds, 8, Path("."), None)
    if remote:
        print(f"\nremote store (a writable `oxigraph serve` on 127.0.0.1), {remote['quads']} quads: first build "
              f"{remote['build']:.2f} s ({remote['build: sent']}); rebuild with nothing changed "
              f"{remote['rebuild']:.2f} s ({remote['rebuild: sent']}); after one edit {remote['one edit']:.2f} s "
              f"({remote['one edit: sent']}); --full {remote['full rebuild']:.2f} s ({remote['full rebuild: sent']}). "
              "/sparql below is `mg-rdf serve --store URL` against that oxigraph server answered directly")
        http_bench.report(remote["http"], 1.0 if args.quick else args.seconds, 8, Path("."), None)
    if args.json:
        args.json.write_text(json.dumps({"builds": results, "http": http, "remote": remote}, indent=2) + "\n")
    return 0


def run_http(store: Path, seconds: float, tmp_path: Path) -> dict:
    oxigraph = str(Path(sys.executable).parent / "oxigraph")
    build_dir = (store / "current").resolve()
    port = http_bench.free_port()
    ours, ours_url = http_bench.start("mg-rdf", [sys.executable, "-c", "from mg_rdf.cli import main; main()", "serve",
                                                 "--store", str(store), "--host", "127.0.0.1", "--port", str(port)],
                                      "/sparql?query=ASK%20%7B%7D", tmp_path, port)
    try:
        http_bench.wait_for_memory_copies(ours_url)   # the steady state of a long-running server
        port = http_bench.free_port()
        oxi, oxi_url = http_bench.start("oxigraph", [oxigraph, "serve-read-only", "--location", str(build_dir),
                                                     "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
                                        "/query?query=ASK%20%7B%7D", tmp_path, port)
        try:
            return http_bench.run_all(ours_url, oxi_url, seconds, 8, loader=http_bench.best_loader())
        finally:
            http_bench.stop(oxi)
    finally:
        http_bench.stop(ours)


def run_remote(corpus: Path, seconds: float, tmp_path: Path) -> dict:
    """Build the real corpus into a writable `oxigraph serve` and serve /sparql and pages from it."""
    oxigraph = str(Path(sys.executable).parent / "oxigraph")
    cli = [sys.executable, "-c", "from mg_rdf.cli import main; main()"]
    port = http_bench.free_port()
    oxi, oxi_url = http_bench.start("oxigraph-rw", [oxigraph, "serve", "--location", str(tmp_path / "remote-ox"),
                                                    "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
                                    "/query?query=ASK%20%7B%7D", tmp_path, port)
    endpoint = f"{oxi_url}/query"
    copy = tmp_path / "remote-corpus"   # a copy, to edit one entity in it
    shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns(".git"))
    edited = sorted((copy / "entities" / "organizations").glob("*.md"))[0]
    try:
        out: dict = {}
        for name, flags in (("build", []), ("rebuild", []), ("one edit", []), ("full rebuild", ["--full"])):
            if name == "one edit":
                edited.write_text(edited.read_text().replace("\nname: ", "\nname: Edited ", 1))
            t = time.perf_counter()
            done = subprocess.run([*cli, "build", str(copy), "--store", endpoint, *flags], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            out[name] = time.perf_counter() - t
            if done.returncode != 0:
                raise RuntimeError(f"mg-rdf build into {endpoint} failed:\n{done.stderr[-3000:]}")
            sent = re.search(r"(\d+) of (\d+) graphs sent, (\d+) quads", done.stdout)
            out[f"{name}: sent"] = sent.group(0) if sent else None
        status, body = http_bench.Client(oxi_url).send(
            "POST", "/query", b"SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
            {"Content-Type": "application/sparql-query", "Accept": "text/csv"})
        out["quads"] = int(body.decode().split()[-1]) if status == 200 else None
        port = http_bench.free_port()
        ours, ours_url = http_bench.start("mg-rdf-remote", [*cli, "serve", "--store", endpoint, "--host", "127.0.0.1",
                                                             "--port", str(port)],
                                          "/sparql?query=ASK%20%7B%7D", tmp_path, port)
        try:
            out["http"] = http_bench.run_all(ours_url, oxi_url, seconds, 8, loader=http_bench.best_loader())
        finally:
            http_bench.stop(ours)
        return out
    finally:
        http_bench.stop(oxi)


if __name__ == "__main__":
    sys.exit(main())
