"""Connections kept open between requests by `mg-rdf serve`: many requests on one connection,
pipelined requests, the idle limit, closing when asked, and the rules that keep a slow request
from holding up the clients whose connections sit in the same serving process.

Every server here is a real `mg-rdf serve` process on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from live_server import start_server

from mg_rdf.web.serve import KEEPALIVE, KEEPALIVE_POLL

CARTESIAN = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"   # never ends on any store
ENTITY = "camp-access-now-ban-biometric-surveillance-global-2021-ongoing"


@pytest.fixture(scope="module")
def server(sample_build, tmp_path_factory):
    """One serving process: no other process for a connection to be moved to (see the test of
    that below), so every connection here stays open until the client or the idle limit ends it."""
    s = start_server(sample_build.store_path.parent.parent, "--processes", "1",
                     log_dir=tmp_path_factory.mktemp("keep-alive"))
    yield s
    s.stop()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def read_response(f) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length from a socket's reader (nothing read past it)."""
    status = int(f.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, f.read(int(headers.get("content-length", "0")))


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def one_process_server(sample_build, tmp_path):
    return start_server(sample_build.store_path.parent.parent, "--processes", "1", "--max-processes", "1",
                        log_dir=tmp_path)


def kept_connections(url: str, n: int) -> list[http.client.HTTPConnection]:
    """``n`` connections, each open after one answered request."""
    conns = [http.client.HTTPConnection(*host_port(url), timeout=30) for _ in range(n)]
    for c in conns:
        c.request("GET", "/healthz")
        assert c.getresponse().read() is not None
    return conns


def test_one_connection_carries_requests_of_every_kind(server):
    conn = http.client.HTTPConnection(*host_port(server.url), timeout=30)
    ask = "/sparql?" + urlencode({"query": "ASK { ?s ?p ?o }"})
    post_body = b"SELECT ?s WHERE { ?s a ?t } LIMIT 3"
    conn.request("GET", f"/page/{ENTITY}")
    first = conn.getresponse()
    page = first.read()
    etag = first.getheader("ETag")
    local = conn.sock.getsockname()
    assert first.status == 200 and page and etag
    assert first.getheader("Connection", "").lower() == "keep-alive"
    steps = [
        ("GET", ask, None, {"Accept": "application/sparql-results+json"}, 200),
        ("POST", "/sparql", post_body, {"Content-Type": "application/sparql-query",
                                        "Accept": "application/sparql-results+json"}, 200),
        ("GET", f"/page/{ENTITY}", None, {"If-None-Match": etag}, 304),   # no body: its head is not held back
        ("HEAD", "/", None, {}, 200),                                     # no body either
        ("GET", f"/id/{ENTITY}", None, {"Accept": "text/turtle"}, 303),
        ("GET", "/id/no-such-entity", None, {"Accept": "text/html"}, 404),
        ("GET", "/sparql?" + urlencode({"query": "SELECT ?x WHERE {"}), None, {}, 400),
        ("GET", f"/data/{ENTITY}.ttl", None, {}, 200),
    ]
    for method, path, body, headers, expected in steps * 3:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == expected, (method, path, resp.status, data[:200])
        assert resp.getheader("Connection", "").lower() == "keep-alive", (method, path)
        assert conn.sock is not None and conn.sock.getsockname() == local, f"{method} {path} closed the connection"
    conn.close()


def test_pipelined_requests_are_answered_in_order(server):
    with socket.create_connection(host_port(server.url), timeout=30) as sock:
        paths = ["/healthz", "/sparql?" + urlencode({"query": "ASK {}"}), f"/data/{ENTITY}.nt", "/healthz"]
        sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\nAccept: application/sparql-results+json\r\n\r\n"
                              .encode() for p in paths))
        f = sock.makefile("rb")
        answers = [read_response(f) for _ in paths]
        assert [a[0] for a in answers] == [200, 200, 200, 200]
        assert b'"boolean"' in answers[1][2] and f"/id/{ENTITY}>".encode() in answers[2][2]


def test_connection_close_and_http_1_0_close_the_connection(server):
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET /healthz HTTP/1.0\r\n\r\n"):
        with socket.create_connection(host_port(server.url), timeout=30) as sock:
            sock.sendall(request)
            f = sock.makefile("rb")
            status, headers, _ = read_response(f)
            assert status == 200 and headers.get("connection", "").lower() == "close"
            assert f.read() == b"", "the server closed the connection after the answer"


def test_an_idle_connection_is_closed_after_the_keep_alive_limit(server):
    with socket.create_connection(host_port(server.url), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock.makefile("rb"))[0] == 200
        assert not closed_by_server(sock, KEEPALIVE - 1.5), "kept open while within the limit"
        assert closed_by_server(sock, 1.5 + KEEPALIVE_POLL + 2), "closed once idle past the limit"


def test_one_process_serves_every_connection_it_holds(sample_build, tmp_path):
    """One serving process, three clients that keep their connections: each is answered in turn,
    each on its own connection."""
    s = one_process_server(sample_build, tmp_path)
    try:
        conns = kept_connections(s.url, 3)
        locals_ = [c.sock.getsockname() for c in conns]
        for _ in range(5):
            for c in reversed(conns):
                c.request("GET", "/sparql?" + urlencode({"query": "ASK {}"}),
                          headers={"Accept": "application/sparql-results+json"})
                r = c.getresponse()
                assert r.status == 200 and b"true" in r.read()
        assert [c.sock.getsockname() for c in conns] == locals_
    finally:
        s.stop()


def test_a_slow_query_does_not_hold_up_clients_whose_connections_sit_in_its_process(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--processes", "1", "--max-processes", "4",
                     "--query-timeout", "30", log_dir=tmp_path)
    try:
        session = requests.Session()
        assert session.get(s.url + "/healthz", timeout=10).status_code == 200   # its connection: in the one process
        box: dict = {}
        slow = threading.Thread(target=lambda: box.update(r=requests.get(
            s.url + "/sparql", params={"query": CARTESIAN}, timeout=60)), daemon=True)
        slow.start()   # taken by the same process (the only one): it is free
        time.sleep(1.0)
        t0 = time.monotonic()
        r = session.get(s.url + "/sparql", params={"query": "ASK {}"}, timeout=60,
                        headers={"Accept": "application/sparql-results+json"})
        waited = time.monotonic() - t0
        assert r.status_code == 200 and waited < 5, (r.status_code, waited)
        assert slow.is_alive() and "r" not in box, "the slow query was still running"
    finally:
        s.stop()


def test_a_server_holding_idle_connections_stops_at_once(sample_build, tmp_path):
    s = one_process_server(sample_build, tmp_path)
    try:
        conns = kept_connections(s.url, 3)
        t0 = time.monotonic()
        os.kill(s.process.pid, signal.SIGTERM)
        assert s.process.wait(10) == 0
        assert time.monotonic() - t0 < 3, "idle connections did not delay the shutdown"
        for c in conns:
            assert closed_by_server(c.sock, 2)
    finally:
        s.stop()


def serving_processes(supervisor: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == supervisor and fields[0] != "Z":
                found.append(int(entry))
    return found


def connections_held(pid: int, client_ports: set[int]) -> int:
    """How many of the clients' connections (by their local ports) process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        cols = line.split()
        remote_port = int(cols[2].split(":")[1], 16)
        if cols[3] == "01" and remote_port in client_ports and cols[9] in inodes:   # 01: established
            held += 1
    return held


def test_a_process_holding_more_than_its_share_of_connections_lets_some_go(sample_build, tmp_path):
    """Keep-alive connections stay where they were first taken. Here one process takes all four
    clients (the other is busy with a slow query meanwhile) but keeps only its share of them
    open; once the other process is free, the clients' new connections spread over both."""
    s = start_server(sample_build.store_path.parent.parent, "--processes", "2", "--max-processes", "2",
                     "--query-timeout", "3", log_dir=tmp_path)
    try:
        slow = threading.Thread(target=lambda: requests.get(s.url + "/sparql", params={"query": CARTESIAN},
                                                            timeout=60), daemon=True)
        slow.start()
        time.sleep(0.5)
        conns = [http.client.HTTPConnection(*host_port(s.url), timeout=30) for _ in range(4)]
        ask = "/sparql?" + urlencode({"query": "ASK {}"})
        accept = {"Accept": "application/sparql-results+json"}
        for c in conns:
            c.request("GET", ask, headers=accept)
            assert c.getresponse().read()
        kept = [c for c in conns if c.sock is not None]   # http.client drops a socket the server closes
        held = sorted(connections_held(p, {c.sock.getsockname()[1] for c in kept})
                      for p in serving_processes(s.process.pid))
        # Two connections each is the share: the one process kept two and closed the others.
        assert len(kept) == 2 and held == [0, 2], (len(kept), held)
        slow.join(30)   # the slow query ends by its limit (503); its process is replaced
        for _ in range(10):
            for c in conns:
                c.request("GET", ask, headers=accept)
                r = c.getresponse()
                assert r.status == 200 and r.read()
        ports = {c.sock.getsockname()[1] for c in conns if c.sock is not None}
        held = [connections_held(p, ports) for p in serving_processes(s.process.pid)]
        assert max(held) <= 2 and min(held) >= 1, f"connections per process: {held}"
    finally:
        s.stop()


def test_a_connection_that_sends_nothing_does_not_hold_its_process(sample_build, tmp_path):
    """A client may open a connection and send nothing yet (browsers open spare ones). With one
    serving process, the next client is still answered at once."""
    s = one_process_server(sample_build, tmp_path)
    try:
        with socket.create_connection(host_port(s.url), timeout=30) as silent:
            time.sleep(0.2)   # taken by the process, which waits for its request
            t0 = time.monotonic()
            r = requests.get(s.url + "/healthz", timeout=30)
            assert r.status_code == 200 and time.monotonic() - t0 < 3, time.monotonic() - t0
            silent.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")   # and it is served when it speaks
            assert read_response(silent.makefile("rb"))[0] == 200
    finally:
        s.stop()


def test_keep_alive_0_closes_every_connection_after_its_answer(sample_build, tmp_path):
    s = start_server(sample_build.store_path.parent.parent, "--keep-alive", "0", log_dir=tmp_path)
    try:
        with socket.create_connection(host_port(s.url), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            f = sock.makefile("rb")
            status, headers, _ = read_response(f)
            assert status == 200 and headers.get("connection", "").lower() == "close"
            assert f.read() == b""
    finally:
        s.stop()
