"""Faults: a serving process killed mid-request, slow queries, graceful shutdown, liveness and
readiness, and a short load run.

Each server here is a real `mg-rdf serve` process started for the test (a supervisor and
its forked serving processes, which run /sparql queries themselves); the serving processes
are found as its child processes in /proc, and the one busy with a query as the one
burning CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import ROOT
from live_server import start_server

CARTESIAN = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"   # never ends on any store
SMALL = ["ASK { GRAPH ?g { ?s ?p ?o } }", "SELECT ?s WHERE { GRAPH ?g { ?s a ?t } } LIMIT 5",
         "SELECT ?t (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s a ?t } } GROUP BY ?t"]


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def query_workers(server_pid: int) -> list[int]:
    """The serving processes (they run the queries): the supervisor's living children."""
    return [pid for pid in children(server_pid) if alive(pid)]


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])   # utime + stime


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def busy_worker(server_pid: int, within: float = 30.0) -> int:
    """The worker that is running a query: the one whose CPU time grows."""
    deadline = time.monotonic() + within
    before = {w: cpu_ticks(w) for w in query_workers(server_pid)}
    while time.monotonic() < deadline:
        time.sleep(0.2)
        for w in query_workers(server_pid):
            if w in before and cpu_ticks(w) - before[w] >= 20:   # 0.2 s of CPU: it is evaluating
                return w
            before.setdefault(w, cpu_ticks(w))
    raise AssertionError(f"no query worker of {server_pid} started working within {within} s")


def in_background(fn, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        try:
            box["response"] = fn(*args)
        except Exception as e:   # noqa: BLE001 - handed to the test, which says what it expected
            box["error"] = e
        box["at"] = time.monotonic()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


def ask(url: str, query: str, **params) -> requests.Response:
    return requests.get(url + "/sparql", params={"query": query, **params}, timeout=120,
                        headers={"Accept": "application/sparql-results+json"})


@pytest.fixture()
def server(sample_build, tmp_path):
    """A server of its own (its workers get killed), with a query limit far beyond the test's waits."""
    s = start_server(sample_build.store_path.parent.parent, "--query-timeout", "60", log_dir=tmp_path)
    yield s
    s.stop()


# --- a serving process killed mid-request, slow queries ------------------------------

def test_a_serving_process_killed_mid_query_loses_only_its_request_and_is_replaced(server):
    assert ask(server.url, SMALL[0]).status_code == 200
    pid = server.process.pid
    th, box = in_background(ask, server.url, CARTESIAN)
    victim = busy_worker(pid)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    th.join(30)
    assert not th.is_alive() and box["at"] - killed_at < 10, "the client learnt at once that its request was lost"
    r = box.get("response")
    assert r is None or r.status_code >= 500, "never a 200 for a query whose process died"
    for i in range(12):
        r = ask(server.url, SMALL[i % len(SMALL)])
        assert r.status_code == 200, f"query {i} after the kill: {r.status_code} {r.text[:200]}"
    assert requests.get(server.url + "/page/org-access-now", timeout=60).status_code == 200
    assert requests.get(server.url + "/readyz", timeout=60).status_code == 200
    assert victim not in query_workers(pid) and query_workers(pid), "the dead process was replaced"


def test_other_clients_are_answered_while_a_serving_process_dies(server):
    pid = server.process.pid
    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            statuses.append(ask(server.url, SMALL[len(statuses) % len(SMALL)]).status_code)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    th, box = in_background(ask, server.url, CARTESIAN)
    os.kill(busy_worker(pid), signal.SIGKILL)
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join(30)
    th.join(30)
    assert len(statuses) > 10 and set(statuses) == {200}, statuses


def test_a_query_past_its_limit_gets_503_and_its_process_is_replaced(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--query-timeout", "1", "--processes", "2",
                     log_dir=tmp_path)
    try:
        assert ask(s.url, SMALL[0]).status_code == 200
        before = set(query_workers(s.process.pid))
        r = ask(s.url, CARTESIAN)
        assert r.status_code == 503 and r.headers["MG-RDF-Time-Limit"] == "1", r.text
        assert "time limit of 1 s" in r.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = set(query_workers(s.process.pid))
            if len(before - now) == 1 and len(now) >= 2:
                break
            time.sleep(0.1)
        assert len(before - now) == 1, "the process that ran the query ended (that is what stops the query)"
        assert len(now) >= 2, "and was replaced"
        assert all(ask(s.url, SMALL[i % 3]).status_code == 200 for i in range(6))
        assert "a query outlived its time limit" in s.log.read_text()
    finally:
        s.stop()


def test_more_slow_queries_than_processes_do_not_stop_fast_queries_or_pages(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--query-timeout", "20", "--processes", "2",
                     "--max-processes", "8", log_dir=tmp_path)
    try:
        slow = [in_background(ask, s.url, CARTESIAN) for _ in range(3)]
        time.sleep(1.5)
        for i in range(6):
            t0 = time.monotonic()
            r = ask(s.url, SMALL[i % len(SMALL)])
            assert r.status_code == 200 and time.monotonic() - t0 < 5, (r.status_code, time.monotonic() - t0)
        assert requests.get(s.url + "/page/org-access-now", timeout=60).status_code == 200
        assert len(query_workers(s.process.pid)) > 3, "the server grew while its processes were held up"
        assert all(th.is_alive() for th, _ in slow), "the slow queries were still running"
    finally:
        s.stop()


# --- graceful shutdown -------------------------------------------------------------

def connection_refused(url: str) -> bool:
    """No new connection is taken: refused, or reset (a connect that raced the shutdown of the
    listening socket sat in its backlog, and the kernel resets it when the socket closes)."""
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_request_in_flight_finish_then_the_server_exits_0(sample_build, tmp_path, sig):
    grace = 20
    s = start_server(sample_build.store_path.parent.parent, "--query-timeout", "3", log_dir=tmp_path,
                     env={"MG_RDF_SHUTDOWN_GRACE": str(grace)})
    try:
        assert ask(s.url, SMALL[0]).status_code == 200
        workers = query_workers(s.process.pid)
        th, box = in_background(ask, s.url, CARTESIAN)
        busy_worker(s.process.pid)
        s.process.send_signal(sig)
        signalled = time.monotonic()
        deadline = signalled + 3
        while not connection_refused(s.url):
            assert time.monotonic() < deadline, "still accepting connections 3 s after the signal"
            time.sleep(0.1)
        th.join(30)
        r = box.get("response")
        assert r is not None, f"the request in flight was cut off: {box.get('error')}"
        assert r.status_code == 503 and r.headers.get("MG-RDF-Time-Limit") == "3", \
            "the in-flight query got its complete answer (stopped by its time limit)"
        code = s.process.wait(grace + 5)
        assert code == 0
        assert time.monotonic() - signalled < grace, "exited within the grace period"
        log = s.log.read_text()
        # At least the slow query is in flight (a probe connection accepted just before may be too).
        assert "shutting down" in log and re.search(r"[1-9] request\(s\) in flight", log) and "stopped" in log, \
            log[-2000:]
        time.sleep(1)
        assert len(workers) >= 2 and not [w for w in workers if alive(w)], "every serving process ended"
    finally:
        s.stop()


def test_an_idle_server_stops_at_once(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, log_dir=tmp_path)
    try:
        t0 = time.monotonic()
        s.process.send_signal(signal.SIGTERM)
        assert s.process.wait(10) == 0
        assert time.monotonic() - t0 < 3
    finally:
        s.stop()


def test_a_request_that_outlives_the_grace_period_is_cut_and_the_server_still_exits_0(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--query-timeout", "60", log_dir=tmp_path,
                     env={"MG_RDF_SHUTDOWN_GRACE": "1"})
    try:
        th, box = in_background(ask, s.url, CARTESIAN)
        busy_worker(s.process.pid)
        t0 = time.monotonic()
        s.process.send_signal(signal.SIGTERM)
        assert s.process.wait(15) == 0
        assert time.monotonic() - t0 < 6, "the grace period of 1 s bounds the shutdown"
        th.join(10)
        r = box.get("response")
        assert r is None or r.status_code >= 500, "no partial 200"
        assert "grace period over" in s.log.read_text()
    finally:
        s.stop()


# --- liveness and readiness ------------------------------------------------------------

def test_healthz_needs_no_store_and_readyz_says_there_is_none(tmp_path):
    from mg_rdf.web import create_app

    client = create_app({"STORE_PATH": tmp_path / "no-store-here", "TESTING": True}).test_client()
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"} and r.headers["Cache-Control"] == "no-store"
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["status"] == "no-store" and "no store" in r.json["reason"]


def test_readyz_is_ready_when_the_store_answers_through_the_workers(sample_app, sample_build):
    r = sample_app.test_client().get("/readyz")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "ready" and r.json["build"] == sample_build.store_path.name
    assert r.json["entities"] > 5 and r.json["query_workers"] >= 1 and r.json["workers_ms"] >= 0


def test_readyz_is_503_when_no_query_worker_can_start(sample_app):
    from mg_rdf.web.query_service import QueryPool

    broken = QueryPool(1, 1, queue_wait=1, command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    sample_app.extensions["mg_rdf.query_pool"] = broken
    try:
        r = sample_app.test_client().get("/readyz")
        assert r.status_code == 503 and r.json["status"] == "query-workers-unavailable", r.json
    finally:
        broken.close()


def test_readyz_is_503_while_draining(sample_app):
    from mg_rdf.web.health import DRAINING

    sample_app.extensions[DRAINING].set()
    r = sample_app.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["status"] == "draining"
    assert sample_app.test_client().get("/healthz").status_code == 200


def test_readyz_on_a_real_server_follows_the_store(sample_build, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(sample_build.store_path.parent.parent, store, symlinks=True)
    s = start_server(store, log_dir=tmp_path)
    try:
        assert requests.get(s.url + "/readyz", timeout=60).json()["status"] == "ready"
        target = os.readlink(store / "current")
        (store / "current").unlink()
        r = requests.get(s.url + "/readyz", timeout=60)
        assert r.status_code == 503 and r.json()["status"] == "no-store"
        assert requests.get(s.url + "/healthz", timeout=60).status_code == 200, "alive all the same"
        os.symlink(target, store / "current")
        assert requests.get(s.url + "/readyz", timeout=60).status_code == 200
    finally:
        s.stop()


# --- the load tool, briefly --------------------------------------------------------------

def test_a_short_load_run_gets_no_5xx_on_the_normal_mix(head_build, tmp_path):
    out = tmp_path / "load.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_test.py"), "--quick", "--clients", "6",
                          "--duration", "4", "--store", str(head_build.store_path.parent.parent), "--json", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.exists(), run.stdout + run.stderr
    result = json.loads(out.read_text())
    normal, patho = result["normal"], result["pathological"]
    assert normal["requests"] > 20, run.stdout
    assert normal["5xx"] == 0, run.stdout
    assert not normal["connection_errors"], run.stdout
    assert all(k["requests"] for k in normal["by_kind"].values()), "every kind of the mix was sent"
    assert patho["sent"] >= 1 and patho["ended_by_time_limit"] == patho["sent"], run.stdout
    assert result["server"]["exit_code"] == 0, "the server shut down cleanly after the run"
    assert run.returncode == 0, run.stdout
