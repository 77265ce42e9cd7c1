"""A bounded load test of `mg-rdf serve`: many concurrent clients, a realistic mix, a few pathological queries.

    .venv/bin/python benchmarks/load_test.py                       # 64 clients, 60 s, builds ../shared's corpus
    .venv/bin/python benchmarks/load_test.py --store PATH          # an existing store instead of a build
    .venv/bin/python benchmarks/load_test.py --quick               # 5 s, 8 clients, 2 s query limit (CI)
    .venv/bin/python benchmarks/load_test.py --duration 30 --clients 32 --json out.json

It starts its own `mg-rdf serve` on 127.0.0.1 (or uses ``--url``), waits for
/readyz, and runs ``--clients`` threads for ``--duration`` seconds, each with
its own connection (kept alive while the server keeps it open; when `mg-rdf serve`
closes it — ``--keep-alive 0``, a process over its share of connections, a slow
request's idle neighbours — the client opens a new one), each
sending one request after another (no think time) drawn from the normal mix:

    entity page 25 %   /page/{id}                          (HTML, the heaviest page)
    dereference  5 %   /id/{id}                            (303, not followed)
    data document 20 % /data/{id}.{ttl,jsonld,nt,rdf}
    small SPARQL 20 %  one entity's triples, ASK, count by type
    medium SPARQL 10 % 2-hop neighbours, name search, GROUP BY + ORDER BY
    named query 15 %   /api/queries/{name} with each query's example arguments
    search/browse 5 %  /search?q=…, /browse/{type}

over entities picked at random from the store. The kinds are dealt from a shared,
shuffled deck of 20 cards in these proportions, so every 20 requests of the run
hold each kind in its share (a random draw per request could leave the 5 % kinds
out of a short run on a slow machine). Beside them, every
``--pathological-every`` seconds one pathological query is sent (a cartesian
product, an unbounded property path over every predicate, an ORDER BY over a
cartesian product), without a timeout of its own: the server's time limit must
end each one with 503. When the time is up the tool waits for those still
running, then stops the server with SIGTERM (a graceful shutdown, timed).

It prints requests, throughput, answers by status, latency percentiles (p50,
p95, p99) of the normal mix (all and by kind) and what became of each
pathological query, and exits 1 if the normal mix got any 5xx or a pathological
query was not ended by the time limit. The client threads run on the same
machine as the server and take CPU from it; on a shared machine the figures are
noisy: compare runs made side by side, not against absolutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

from mg_rdf import schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import build_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "movement-graph"
MG = "https://w3id.org/movement-graph/ontology#"

MIX = {"entity page": 25, "dereference": 5, "data document": 20, "small sparql": 20, "medium sparql": 10,
       "named query": 15, "search/browse": 5}
EXPECTED = {"dereference": 303}   # every other kind expects 200

SMALL = [
    "CONSTRUCT {{ {e} ?p ?o . ?s ?q {e} }} WHERE {{ {{ {e} ?p ?o }} UNION {{ ?s ?q {e} }} }}",
    "SELECT ?p ?o WHERE {{ {e} ?p ?o }}",
    "ASK {{ {e} a ?type }}",
    "SELECT ?type (COUNT(?x) AS ?n) WHERE {{ ?x a ?type }} GROUP BY ?type",
]
MEDIUM = [
    "SELECT DISTINCT ?n2 WHERE {{ {e} ?p ?n1 . ?n1 ?q ?n2 . FILTER(isIRI(?n2)) }} LIMIT 500",
    "SELECT ?x ?name WHERE {{ ?x mg:name ?name FILTER(CONTAINS(LCASE(?name), \"{word}\")) }} LIMIT 100",
    ("SELECT ?org (COUNT(DISTINCT ?c) AS ?n) WHERE {{ ?org mg:leadsCampaign|mg:organizationParticipatesIn ?c }} "
     "GROUP BY ?org ORDER BY DESC(?n) LIMIT 20"),
    "SELECT ?tag (COUNT(?x) AS ?n) WHERE {{ ?x mg:tag ?tag }} GROUP BY ?tag ORDER BY DESC(?n) LIMIT 50",
]
PATHOLOGICAL = {
    "cartesian product": "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
    "unbounded path": "SELECT (COUNT(*) AS ?n) WHERE { ?a (!<urn:mg-rdf:none>)* ?b }",
    "sorted cartesian": "SELECT ?a ?d WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY STR(?c) STR(?f) LIMIT 1",
}
WORDS = ["ai", "rights", "data", "union", "justice", "tech", "open", "labour", "face", "privacy"]
FORMATS = ["ttl", "jsonld", "nt", "rdf"]
RESULTS_JSON = "application/sparql-results+json"


@dataclass
class Targets:
    """What the mix picks from: entity ids and types from the store, named queries with their examples."""
    entities: list[str]
    types: list[str]
    named: list[str]            # path + query string of each named query's example


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


class Client:
    """One keep-alive HTTP connection; reconnects once when the server closed it."""

    def __init__(self, url: str, timeout: float = 120.0):
        u = urlparse(url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = self._connect()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def sparql(query: str) -> str:
    return "/sparql?" + urlencode({"query": query})


def normal_request(kind: str, rng: random.Random, t: Targets, base: str) -> tuple[str, str, dict[str, str]]:
    """(method, path, headers) of one request of the given kind."""
    eid = rng.choice(t.entities)
    iri = f"<{base}id/{eid}>"
    if kind == "entity page":
        return "GET", f"/page/{quote(eid)}", {"Accept": "text/html"}
    if kind == "dereference":
        return "GET", f"/id/{quote(eid)}", {"Accept": rng.choice(["text/html", "text/turtle"])}
    if kind == "data document":
        return "GET", f"/data/{quote(eid)}.{rng.choice(FORMATS)}", {}
    if kind == "small sparql":
        q = rng.choice(SMALL).format(e=iri)
        accept = "application/n-triples" if q.startswith("CONSTRUCT") else RESULTS_JSON
        return "GET", sparql(q), {"Accept": accept}
    if kind == "medium sparql":
        return "GET", sparql(rng.choice(MEDIUM).format(e=iri, word=rng.choice(WORDS))), {"Accept": RESULTS_JSON}
    if kind == "named query":
        return "GET", rng.choice(t.named), {"Accept": "application/json"}
    if rng.random() < 0.5:
        return "GET", "/search?" + urlencode({"q": rng.choice(WORDS)}), {"Accept": "text/html"}
    return "GET", f"/browse/{rng.choice(t.types)}", {"Accept": "text/html"}


def discover(url: str, base: str) -> Targets:
    c = Client(url)
    q = f"SELECT ?e ?type WHERE {{ ?g <{MG}describes> ?e . ?e a ?type FILTER(STRSTARTS(STR(?type), \"{MG}\")) }}"
    status, _, body = c.send("GET", sparql(q), headers={"Accept": RESULTS_JSON})
    if status != 200:
        raise RuntimeError(f"listing the entities answered {status}: {body[:300]!r}")
    rows = json.loads(body)["results"]["bindings"]
    entities = sorted({r["e"]["value"].removeprefix(base + "id/") for r in rows})
    status, _, body = c.send("GET", "/api/queries", headers={"Accept": "application/json"})
    named = [] if status != 200 else [urlparse(q["example"])._replace(scheme="", netloc="").geturl()
                                      for q in json.loads(body)]
    types = sorted(schema.TYPES)
    if not entities or not named:
        raise RuntimeError(f"nothing to load: {len(entities)} entities, {len(named)} named queries")
    return Targets(entities, types, named)


class Deck:
    """The kinds of the mix, dealt from a shuffled deck in their proportions (one card per 5 %),
    reshuffled when it runs out; shared by the client threads."""

    def __init__(self, rng: random.Random):
        step = math.gcd(*MIX.values())
        self.cards = [kind for kind, weight in MIX.items() for _ in range(weight // step)]
        self.rng, self.left, self.lock = rng, [], threading.Lock()

    def deal(self) -> str:
        with self.lock:
            if not self.left:
                self.left = self.cards[:]
                self.rng.shuffle(self.left)
            return self.left.pop()


def run_load(url: str, targets: Targets, base: str, clients: int, duration: float, every: float,
             seed: int, wait_after: float) -> dict:
    deck = Deck(random.Random(seed))
    tallies = {k: Tally() for k in MIX}
    errors: Counter = Counter()      # exceptions (connection errors), by kind
    lock = threading.Lock()
    warm = Client(url)
    for kind in MIX:                  # first-use costs (caches, worker start) out of the figures
        warm.send(*normal_request(kind, random.Random(seed), targets, base)[:2])
    started = time.monotonic()
    deadline = started + duration

    def client(n: int) -> None:
        rng, c = random.Random(seed * 1000 + n), Client(url)
        mine = {k: Tally() for k in MIX}
        failed: Counter = Counter()
        while time.monotonic() < deadline:
            kind = deck.deal()
            method, path, headers = normal_request(kind, rng, targets, base)
            t0 = time.perf_counter()
            try:
                status, _, _ = c.send(method, path, headers=headers)
            except (OSError, http.client.HTTPException) as e:
                failed[f"{kind}: {type(e).__name__}"] += 1
                c = Client(url)
                continue
            mine[kind].latencies.append(time.perf_counter() - t0)
            mine[kind].statuses[status] += 1
        with lock:
            for k, t in mine.items():
                tallies[k].latencies += t.latencies
                tallies[k].statuses.update(t.statuses)
            errors.update(failed)

    patho: list[dict] = []
    patho_threads: list[threading.Thread] = []

    def pathological(name: str, query: str) -> None:
        t0 = time.perf_counter()
        try:
            status, headers, body = Client(url, timeout=wait_after).send("GET", sparql(query),
                                                                         headers={"Accept": RESULTS_JSON})
            outcome = {"status": status, "time_limit": headers.get("mg-rdf-time-limit"),
                       "message": body[:160].decode(errors="replace").strip() if status != 200 else ""}
        except (OSError, http.client.HTTPException) as e:
            outcome = {"status": type(e).__name__, "time_limit": None, "message": str(e)}
        with lock:
            patho.append({"query": name, "seconds": round(time.perf_counter() - t0, 2), **outcome})

    def scheduler() -> None:
        names = list(PATHOLOGICAL)
        i, next_at = 0, started + min(1.0, every)
        while next_at < deadline:
            time.sleep(max(0.0, next_at - time.monotonic()))
            name = names[i % len(names)]
            th = threading.Thread(target=pathological, args=(name, PATHOLOGICAL[name]), daemon=True)
            th.start()
            patho_threads.append(th)
            i, next_at = i + 1, next_at + every

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    sched = threading.Thread(target=scheduler, daemon=True)
    for th in (*threads, sched):
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    sched.join()
    for th in patho_threads:
        th.join(max(0.0, started + duration + wait_after - time.monotonic()))
    return summarise(tallies, errors, patho, len(patho_threads), elapsed)


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return round(sorted_values[k] * 1000, 1)


def summarise(tallies: dict[str, Tally], errors: Counter, patho: list[dict], patho_sent: int,
              elapsed: float) -> dict:
    by_kind, every_latency, statuses = {}, [], Counter()
    for kind, t in tallies.items():
        lat = sorted(t.latencies)
        every_latency += lat
        statuses.update(t.statuses)
        expected = EXPECTED.get(kind, 200)
        by_kind[kind] = {"requests": len(lat), "statuses": {str(s): n for s, n in sorted(t.statuses.items())},
                         "unexpected": sum(n for s, n in t.statuses.items() if s != expected),
                         "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99)}
    every_latency.sort()
    limited = [p for p in patho if p["status"] == 503 and p["time_limit"]]
    return {
        "seconds": round(elapsed, 1),
        "normal": {"requests": len(every_latency), "requests_per_s": round(len(every_latency) / elapsed, 1),
                   "statuses": {str(s): n for s, n in sorted(statuses.items())},
                   "5xx": sum(n for s, n in statuses.items() if s >= 500),
                   "connection_errors": dict(errors),
                   "p50_ms": percentile(every_latency, 50), "p95_ms": percentile(every_latency, 95),
                   "p99_ms": percentile(every_latency, 99), "by_kind": by_kind},
        "pathological": {"sent": patho_sent, "answered": len(patho), "ended_by_time_limit": len(limited),
                         "outcomes": dict(Counter(f"{p['query']}: {p['status']}" for p in patho)),
                         "seconds": sorted(p["seconds"] for p in patho),
                         "not_time_limited": [p for p in patho if p not in limited]},
    }


def report(r: dict, config: dict) -> str:
    n, p = r["normal"], r["pathological"]
    limit = f"{config['query_timeout']} s" if config["query_timeout"] else "as that server sets it"
    lines = [(f"load test: {config['clients']} clients for {r['seconds']} s on {config['url']} "
              f"({os.cpu_count()} CPUs; client and server share them; a shared, noisy machine)"),
             f"store {config['store'] or 'of the server at --url'}, server query time limit {limit}",
             "",
             (f"normal mix: {n['requests']} requests, {n['requests_per_s']} req/s, 5xx: {n['5xx']}, "
              f"connection errors: {sum(n['connection_errors'].values())}"),
             f"  latency p50 {n['p50_ms']} ms, p95 {n['p95_ms']} ms, p99 {n['p99_ms']} ms",
             f"  answers by status: {', '.join(f'{s}: {c}' for s, c in n['statuses'].items())}",
             ""]
    rows = [["kind", "requests", "statuses", "p50 ms", "p95 ms", "p99 ms"]]
    for kind, k in n["by_kind"].items():
        rows.append([kind, str(k["requests"]), " ".join(f"{s}:{c}" for s, c in k["statuses"].items()),
                     str(k["p50_ms"]), str(k["p95_ms"]), str(k["p99_ms"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in rows]
    lines += ["", (f"pathological queries (one every {config['every']:g} s): {p['sent']} sent, "
                   f"{p['ended_by_time_limit']} ended by the time limit (503), "
                   f"{p['sent'] - p['ended_by_time_limit']} otherwise"),
              f"  outcomes: {p['outcomes']}", f"  seconds each: {p['seconds']}"]
    for bad in p["not_time_limited"]:
        lines.append(f"  NOT time-limited: {bad}")
    if "server" in r:
        s = r["server"]
        lines.append(f"\nserver stopped by SIGTERM in {s['shutdown_s']} s, exit code {s['exit_code']}")
    return "\n".join(lines)


# --- the server -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, query_timeout: float, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-c", "from mg_rdf.cli import main; main()", "serve", "--store", str(store),
           "--host", "127.0.0.1", "--port", str(port), "--query-timeout", f"{query_timeout:g}"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mg-rdf serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if Client(url, timeout=10).send("GET", "/readyz")[0] == 200:
                return proc, url
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"mg-rdf serve was not ready within 120 s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen, grace: float) -> dict:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(grace + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return {"exit_code": code, "shutdown_s": round(time.monotonic() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="an existing mg-rdf store (default: build --corpus into a temp dir)")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--url", help="load this running server instead of starting one")
    ap.add_argument("--duration", type=float, help="seconds of load (default 60; 5 with --quick)")
    ap.add_argument("--clients", type=int, help="concurrent clients (default 64; 8 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a few seconds, fewer clients, a 2 s query limit (CI)")
    ap.add_argument("--pathological-every", type=float, help="seconds between pathological queries "
                                                              "(default 10; 2 with --quick)")
    ap.add_argument("--query-timeout", type=float, help="the started server's query time limit "
                                                        "(default 10, the server's own; 2 with --quick)")
    ap.add_argument("--base", default=os.environ.get("MG_RDF_BASE", "https://w3id.org/movement-graph/"))
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 60.0)
    clients = args.clients or (8 if args.quick else 64)
    every = args.pathological_every or (2.0 if args.quick else 10.0)
    query_timeout = args.query_timeout or (2.0 if args.quick else 10.0)
    wait_after = query_timeout + 5.0 + 30.0    # limit + the pool's queue wait + slack on a loaded machine

    with tempfile.TemporaryDirectory(prefix="mg-load-test-") as tmp:
        tmp_path, proc = Path(tmp), None
        config = {"clients": clients, "duration": duration, "every": every,
                  "query_timeout": query_timeout if args.url is None else None,
                  "url": args.url, "store": str(args.store) if args.store else None, "seed": args.seed}
        if args.url is None:
            store = args.store or build_store(args.corpus, tmp_path)
            if store is None:
                return 2
            config["store"] = str(store)
            proc, config["url"] = start_server(store, query_timeout, tmp_path / "server.log")
        try:
            targets = discover(config["url"], args.base)
            print(f"{len(targets.entities)} entities, {len(targets.named)} named queries; "
                  f"{clients} clients for {duration:g} s …", file=sys.stderr, flush=True)
            result = run_load(config["url"], targets, args.base, clients, duration, every, args.seed, wait_after)
        finally:
            if proc is not None:
                server = stop_server(proc, query_timeout + 5)
        if proc is not None:
            result["server"] = server
    result["config"] = config
    print(report(result, config))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["normal"]["5xx"] == 0 and not result["pathological"]["not_time_limited"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
