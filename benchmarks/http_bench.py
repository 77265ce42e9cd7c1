"""Our /sparql against `oxigraph serve-read-only`, side by side, plus entity-page latency.

    .venv/bin/python benchmarks/http_bench.py                  # builds the real corpus, 5 s per query
    .venv/bin/python benchmarks/http_bench.py --quick          # 1 s per query (what CI can afford)
    .venv/bin/python benchmarks/http_bench.py --store PATH     # an existing store instead of a build
    .venv/bin/python benchmarks/http_bench.py --json out.json  # also write the figures

One run starts both servers on 127.0.0.1 over the same build (`mg-rdf serve
--store S` and `oxigraph serve-read-only --location S/current
--union-default-graph`, the `oxigraph` CLI from PyPI) and sends them the same
small queries (one entity's description, its 1-hop neighbours, a count by
type) from 8 concurrent keep-alive HTTP connections — wrk's when it is installed
(`--client`; a C client, light enough that the servers are what is measured),
else 8 Python threads — for a fixed time per query, split into `--rounds` turns (default 3)
that alternate which server goes first, so that both get the same share of the
machine's fast and slow moments. It prints requests per second and
p50/p99 latency for each server and the ratio ours/oxigraph, then the latency
of our HTML entity pages (one client, then 8). The queries carry their own
PREFIX lines so both servers read the same text; every answer is checked for
status 200 and both servers must return the same number of results. Ours is measured once
its serving processes answer from their in-memory copies of the build (web/memory_copy.py;
`wait_for_memory_copies`), the state a long-running server is in.

The machine is shared and noisy: compare the two columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "movement-graph"

from mg_rdf.vocab import DEFAULT_BASE, MG

ENTITY = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"
PREFIXES = f"PREFIX mg: <{MG}>\n"


def build_store(corpus: Path, tmp_path: Path) -> Path | None:
    """Build ``corpus`` into ``tmp_path/store`` with `mg-rdf build` (None, said why, if no corpus)."""
    if not (corpus / "entities").is_dir():
        print(f"no corpus at {corpus} (or pass --store)", file=sys.stderr)
        return None
    store = tmp_path / "store"
    print(f"building {corpus} …", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", "from mg_rdf.cli import main; main()", "build", str(corpus),
                    "--store", str(store)], check=True, stdout=subprocess.DEVNULL)
    return store


def small_queries(base: str) -> dict[str, tuple[str, str]]:
    """name -> (SPARQL, Accept). The entity's IRI is written into each UNION branch on purpose:
    Oxigraph does not push an outer binding into UNION branches (see MEASURED.md)."""
    e = f"<{base}id/{ENTITY}>"
    return {
        "describe one entity": (
            f"CONSTRUCT {{ {e} ?p ?o . ?s ?q {e} }} WHERE {{ {{ {e} ?p ?o }} UNION {{ ?s ?q {e} }} }}",
            "application/n-triples"),
        "1-hop neighbours": (
            PREFIXES + f"SELECT DISTINCT ?n ?type ?name WHERE {{ {{ {e} ?p ?n }} UNION {{ ?n ?p {e} }}\n"
            "  ?n a ?type ; mg:name ?name }", "application/sparql-results+json"),
        "count by type": (
            "SELECT ?type (COUNT(?e) AS ?n) WHERE { ?e a ?type } GROUP BY ?type",
            "application/sparql-results+json"),
    }


@dataclass
class Figures:
    label: str
    server: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


class Client:
    """One keep-alive connection, as one of N concurrent clients."""

    def __init__(self, url: str):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):   # a server may close an idle keep-alive connection: reconnect once
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def load(url: str, method: str, paths: list[str], body: bytes | None, headers: dict[str, str],
         clients: int, seconds: float, label: str, server: str, keep: list[float] | None = None) -> Figures:
    """Send requests from ``clients`` threads for ``seconds``; count, time and check them (each
    request's latency is also appended to ``keep``, when given)."""
    warm = Client(url)
    for p in paths[:3]:
        warm.send(method, p, body, headers)   # first-use costs (caches, worker start) out of the figures
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def worker(n: int) -> None:
        c, mine, bad, i = Client(url), [], 0, n
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, data = c.send(method, paths[i % len(paths)], body, headers)
            mine.append(time.perf_counter() - t0)
            bad += status != 200 or not data
            i += 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    elapsed = time.perf_counter() - start
    if keep is not None:
        keep.extend(latencies)
    return figures(label, server, latencies, errors[0], elapsed)


_WRK_SCRIPT = """
local f = io.open(os.getenv("MG_WRK_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.method = os.getenv("MG_WRK_METHOD")
for line in io.lines(os.getenv("MG_WRK_HEADERS")) do
  local k, v = line:match("^([^:]+): (.*)$")
  wrk.headers[k] = v
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("MG requests %d errors %d seconds %f\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1e6))
  for i = 1, 1000 do io.write(string.format("MG q %d\\n", latency:percentile(i / 10))) end
end
"""


def best_loader():
    """wrk when installed (the lighter client: see ``load_wrk``), else Python threads."""
    return load_wrk if shutil.which("wrk") else load


def load_wrk(url: str, method: str, paths: list[str], body: bytes | None, headers: dict[str, str],
             clients: int, seconds: float, label: str, server: str,
             keep: list[float] | None = None) -> Figures:
    """``load`` with wrk (Debian's package) as the clients: ``clients`` HTTP/1.1 keep-alive
    connections from one C thread, which costs the machine far less per request than Python
    threads do (with those, the client was the bound for cached answers: ~1,600-2,000 req/s).
    One path. wrk counts every request and answer that is not 2xx/3xx (``errors``); its latency
    histogram comes back as 1,000 quantiles, appended to ``keep`` (so turns merged through
    ``keep`` weigh alike)."""
    if len(paths) != 1:
        raise ValueError("wrk here sends one URL: give one path")
    warm = Client(url)
    warm.send(method, paths[0], body, headers)   # first-use costs out of the figures
    warm.conn.close()
    with tempfile.TemporaryDirectory(prefix="mg-wrk-") as tmp:
        t = Path(tmp)
        (t / "script.lua").write_text(_WRK_SCRIPT)
        (t / "body").write_bytes(body or b"")
        (t / "headers").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
        env = {**os.environ, "MG_WRK_BODY": str(t / "body"), "MG_WRK_METHOD": method,
               "MG_WRK_HEADERS": str(t / "headers")}
        out = subprocess.run([shutil.which("wrk") or "wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds:g}s",
                              "--timeout", "60s", "-s", str(t / "script.lua"), url + paths[0]],
                             capture_output=True, text=True, check=True, env=env).stdout
    said = [line.split()[1:] for line in out.splitlines() if line.startswith("MG ")]
    _, requests, _, errors, _, elapsed = said[0]
    quantiles = [int(q[1]) / 1e6 for q in said[1:]]
    if keep is not None:
        keep.extend(quantiles)
    return Figures(label, server, int(requests), int(errors), round(float(elapsed), 2),
                   round(int(requests) / float(elapsed), 1), round(percentile(quantiles, 50) * 1000, 2),
                   round(percentile(quantiles, 99) * 1000, 2))


def figures(label: str, server: str, latencies: list[float], errors: int, elapsed: float,
            requests: int | None = None) -> Figures:
    """``requests``: when ``latencies`` are quantiles (``load_wrk``), not one per request."""
    latencies = sorted(latencies)
    n = len(latencies) if requests is None else requests
    return Figures(label, server, n, errors, round(elapsed, 2), round(n / elapsed, 1),
                   round(percentile(latencies, 50) * 1000, 2), round(percentile(latencies, 99) * 1000, 2))


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def answer_size(url: str, path: str, query: str, accept: str) -> int:
    """Rows (SELECT) or triples (CONSTRUCT) in one answer, to check both servers agree."""
    status, data = Client(url).send("POST", path, query.encode(), {"Content-Type": "application/sparql-query",
                                                                      "Accept": accept})
    if status != 200:
        raise RuntimeError(f"{url}{path} answered {status}: {data[:300]!r}")
    if accept.endswith("json"):
        return len(json.loads(data)["results"]["bindings"])
    return sum(1 for line in data.splitlines() if line.strip())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, command: list[str], probe: str, log_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    """Start a server on 127.0.0.1:``port`` and wait until ``probe`` answers 200; kill it if it never does."""
    log = log_dir / f"{name}-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if Client(url).send("GET", probe, None, {})[0] == 200:
                    return proc, url
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer within 60 s: {log.read_text()[-2000:]}")
    except BaseException:
        stop(proc)
        raise


def wait_for_memory_copies(url: str, within: float = 60.0, in_a_row: int = 8) -> float | None:
    """Seconds until ``in_a_row`` uncached answers, each on a new connection (so from any serving
    process), came from the processes' in-memory copies of the build (``Server-Timing: …;desc=
    "memory"``, web/memory_copy.py): the steady state a long-running server is in. None if they
    did not within ``within`` seconds (a store too large to copy, or copies turned off)."""
    path = "/sparql?" + urlencode({"query": "ASK { ?s ?p ?o }"})
    t0 = time.monotonic()
    seen = 0
    while time.monotonic() - t0 < within:
        u = urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", path, headers={"Cache-Control": "no-cache", "Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        seen = seen + 1 if 'desc="memory"' in (resp.getheader("Server-Timing") or "") else 0
        if seen >= in_a_row:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def entity_page_paths(url: str, entity_ids: list[str]) -> list[str]:
    """The HTML page each /id/{id} sends a browser to (its 303 Location), resolved once."""
    u, paths = urlparse(url), []
    for eid in entity_ids:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", f"/id/{eid}", headers={"Accept": "text/html"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status == 303 and resp.getheader("Location"):
            paths.append(urlparse(resp.getheader("Location")).path)
        elif resp.status == 200:
            paths.append(f"/id/{eid}")
        else:
            raise RuntimeError(f"/id/{eid} answered {resp.status}: no entity page to measure")
    return paths


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="an existing mg-rdf store (default: build --corpus into a temp dir)")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--seconds", type=float, default=5.0, help="load time per query and server")
    ap.add_argument("--quick", action="store_true", help="1 s per query")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--processes", type=int, help="mg-rdf serve --processes (default: its own default)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="split each query's time into this many alternating turns per server (default 3)")
    ap.add_argument("--client", choices=("auto", "python", "wrk"), default="auto",
                    help="what sends the queries: wrk (apt-get install wrk) or Python threads;"
                         " auto (default): wrk when installed")
    ap.add_argument("--oxigraph", default=shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph"))
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    if args.client == "wrk" and not shutil.which("wrk"):
        print("no wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    if not Path(args.oxigraph).exists():
        print(f"no oxigraph CLI at {args.oxigraph} (pip install oxigraph)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="mg-http-bench-") as tmp:
        tmp_path = Path(tmp)
        store = args.store or build_store(args.corpus, tmp_path)
        if store is None:
            return 2
        build_dir = (store / "current").resolve()
        port = free_port()
        ours, ours_url = start("mg-rdf", [sys.executable, "-c", "from mg_rdf.cli import main; main()", "serve",
                                          "--store", str(store), "--host", "127.0.0.1", "--port", str(port),
                                          *(["--processes", str(args.processes)] if args.processes else [])],
                               "/sparql?" + urlencode({"query": "ASK {}"}), tmp_path, port)
        try:
            waited = wait_for_memory_copies(ours_url)
            print("mg-rdf's serving processes made no in-memory copy (they answer from disk)" if waited is None else
                  f"mg-rdf's serving processes made their in-memory copies in {waited:.1f} s", file=sys.stderr)
            port = free_port()
            oxi, oxi_url = start("oxigraph", [args.oxigraph, "serve-read-only", "--location", str(build_dir),
                                              "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
                                 "/query?" + urlencode({"query": "ASK {}"}), tmp_path, port)
            try:
                results = run_all(ours_url, oxi_url, seconds, args.clients, max(1, args.rounds),
                                  {"wrk": load_wrk, "python": load}.get(args.client) or best_loader())
            finally:
                stop(oxi)
        finally:
            stop(ours)

    report(results, seconds, args.clients, build_dir, args.json)
    return 0


def run_all(ours: str, oxigraph: str, seconds: float, clients: int, rounds: int = 1, loader=None) -> dict:
    """Each query's ``seconds`` per server are split into ``rounds`` turns, alternating which
    server goes first; the figures are over all turns. ``loader``: how queries are sent
    (``load``, Python threads, by default; ``load_wrk``); pages always go through ``load``."""
    loader = loader or load
    base = os.environ.get("MG_RDF_BASE", DEFAULT_BASE)
    out: dict = {"queries": [], "pages": [], "client": "wrk" if loader is load_wrk else "Python threads"}
    for label, (query, accept) in small_queries(base).items():
        sizes = (answer_size(ours, "/sparql", query, accept), answer_size(oxigraph, "/query", query, accept))
        if sizes[0] != sizes[1]:
            raise RuntimeError(f"{label}: ours answers {sizes[0]} results, oxigraph {sizes[1]}")
        headers = {"Content-Type": "application/sparql-query", "Accept": accept}
        # ours twice: uncached (Cache-Control: no-cache skips the answer cache), then cached
        servers = [("ours", ours, "/sparql", {"Cache-Control": "no-cache"}), ("oxigraph", oxigraph, "/query", {}),
                   ("ours cached", ours, "/sparql", {})]
        kept: dict[str, list] = {s[0]: [[], 0, 0.0, 0] for s in servers}   # latencies, errors, seconds, requests
        for r in range(rounds):
            # The machine's speed drifts over seconds (a VM, other jobs): short turns, taken in
            # alternating order, give both servers the same share of fast and slow moments.
            for server, url, path, extra in (servers if r % 2 == 0 else [servers[1], servers[0], servers[2]]):
                f = loader(url, "POST", [path], query.encode(), {**headers, **extra}, clients, seconds / rounds,
                         label, server, kept[server][0])
                kept[server][1] += f.errors
                kept[server][2] += f.seconds
                kept[server][3] += f.requests
                print(f"  {label:<22} {server:<12} {f.rps:8.1f} req/s  p50 {f.p50_ms:7.2f} ms  p99 {f.p99_ms:7.2f}"
                      f" ms{'  ERRORS ' + str(f.errors) if f.errors else ''}", flush=True)
        runs = {server: figures(label, server, *kept[server]) for server in kept}
        out["queries"].append({"query": label, "results": sizes[0], "ours": asdict(runs["ours"]),
                               "oxigraph": asdict(runs["oxigraph"]), "ours_cached": asdict(runs["ours cached"]),
                               "ratio": round(runs["ours"].rps / runs["oxigraph"].rps, 2),
                               "cached_ratio": round(runs["ours cached"].rps / runs["ours"].rps, 2)})
    ids = [ENTITY, "org-access-now", "org-edri", "org-amnesty-international", "org-privacy-international"]
    paths = entity_page_paths(ours, ids)
    for n in (1, clients):
        f = load(ours, "GET", paths, None, {"Accept": "text/html"}, n, seconds, f"entity page, {n} client(s)", "ours")
        print(f"  {f.label:<32} {f.rps:8.1f} req/s  p50 {f.p50_ms:7.2f} ms  p99 {f.p99_ms:7.2f} ms"
              f"{'  ERRORS ' + str(f.errors) if f.errors else ''}", flush=True)
        out["pages"].append(asdict(f))
    return out


def report(results: dict, seconds: float, clients: int, build_dir: Path, json_out: Path | None) -> None:
    rows = [["query (8 clients)" if clients == 8 else f"query ({clients} clients)", "results", "ours req/s",
             "oxigraph req/s", "ours/oxigraph", "cached req/s", "cached/uncached", "ours p50 / p99 ms",
             "oxigraph p50 / p99 ms"]]
    for q in results["queries"]:
        o, x, c = q["ours"], q["oxigraph"], q["ours_cached"]
        rows.append([q["query"], str(q["results"]), f"{o['rps']:.1f}", f"{x['rps']:.1f}", f"{q['ratio']:.2f}",
                     f"{c['rps']:.1f}", f"{q['cached_ratio']:.2f}",
                     f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f}", f"{x['p50_ms']:.1f} / {x['p99_ms']:.1f}"])
    for p in results["pages"]:
        rows.append([p["label"] + " (HTML)", "", f"{p['rps']:.1f}", "", "", "", "",
                     f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f}", ""])
    print(f"\n{seconds:g} s per row, {os.cpu_count()} CPUs, build {build_dir.name},"
          f" queries sent by {results.get('client', 'Python threads')}\n")
    print(table(rows))
    errors = sum(q[s]["errors"] for q in results["queries"] for s in ("ours", "oxigraph", "ours_cached"))
    errors += sum(p["errors"] for p in results["pages"])
    if errors:
        print(f"\n{errors} requests failed (non-200 or empty): the figures above are not trustworthy")
    if json_out:
        json_out.write_text(json.dumps({"seconds": seconds, "clients": clients, "cpus": os.cpu_count(),
                                        "build": build_dir.name, **results}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
