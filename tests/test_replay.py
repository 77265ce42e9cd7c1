"""Answers sent again (web/replay.py): the same request bytes on the same build get the cached
answer's bytes again, with a new Date and request id, and only then.

Servers here are real `mg-rdf serve` processes on 127.0.0.1 with one serving process, so that
every request of a test meets the answers that process recorded.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from urllib.parse import quote

import pytest
from live_server import start_server

from conftest import ROOT
from mg_rdf.build import build
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris
from mg_rdf.web.replay import Replays, _one_whole_request

ENTITY = "org-edri"
NAME_QUERY = "SELECT ?name WHERE { <%sid/%s> <%sontology#name> ?name }" % (DataIris().base, ENTITY, DataIris().base)
VARYING = ("date", "x-request-id")


def post(query: str, accept: str = "application/sparql-results+json", extra: str = "") -> bytes:
    body = query.encode()
    return (f"POST /sparql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sparql-query\r\n"
            f"Accept: {accept}\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def exchange(sock: socket.socket, *parts: bytes, pause: float = 0.0) -> tuple[bytes, dict[str, str], bytes]:
    """Send ``parts`` (``pause`` s apart), read one answer: its head's lines, headers, body."""
    for i, part in enumerate(parts):
        if i and pause:
            time.sleep(pause)
        sock.sendall(part)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return head, headers, body


def without_varying(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if line.split(b":")[0].lower().decode() not in VARYING]


def log_lines(server, count: int) -> list[dict]:
    """The server's access log lines for /sparql, once there are ``count`` of them (a line is
    written after its answer is sent)."""
    for _ in range(200):
        out = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
        out = [e for e in out if e.get("path") == "/sparql"]
        if len(out) >= count:
            return out
        time.sleep(0.05)
    raise AssertionError(f"{count} access log lines expected, {len(out)} written")


@pytest.fixture()
def served(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "entities", corpus / "entities")
    store = tmp_path / "store"
    build(FolderSource(corpus), store, DataIris(), workers=1)
    server = start_server(store, "--processes", "1", log_dir=tmp_path)
    host, port = server.url.removeprefix("http://").split(":")
    yield server, corpus, store, (host, int(port))
    server.stop()


def test_the_same_bytes_get_the_same_answer_with_a_new_date_and_request_id(served):
    server, _, _, address = served
    request = post(NAME_QUERY)
    with socket.create_connection(address) as sock:
        answers = [exchange(sock, request) for _ in range(4)]
    assert [h["mg-rdf-cache"] for _, h, _ in answers] == ["miss", "hit", "hit", "hit"]
    assert b"European Digital Rights" in answers[0][2]
    ids = {h["x-request-id"] for _, h, _ in answers}
    assert len(ids) == 4, "every answer has its own request id"
    first_hit = answers[1]
    for head, headers, body in answers[2:]:
        assert without_varying(head) == without_varying(first_hit[0])
        assert body == first_hit[2]
        assert headers["date"].endswith(" GMT")
    lines = log_lines(server, 4)
    assert [e.get("replayed", False) for e in lines] == [False, False, True, True]
    for entry, (_, headers, body) in zip(lines, answers):
        assert entry["request_id"] == headers["x-request-id"]
        assert entry["bytes"] == len(body) and entry["status"] == 200 and entry["method"] == "POST"
        assert entry["client"] == "127.0.0.1" and entry["query_ms"] >= 0
    # a GET is recorded too, under its own bytes: its first answer is already from the answer
    # cache (keyed by the query, not the method), so the next two are replayed
    get = (f"GET /sparql?query={quote(NAME_QUERY)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Accept: application/sparql-results+json\r\n\r\n").encode()
    with socket.create_connection(address) as sock:
        got = [exchange(sock, get) for _ in range(3)]
    assert [g[2] for g in got] == [first_hit[2]] * 3
    assert [h["mg-rdf-cache"] for _, h, _ in got] == ["hit"] * 3
    assert [e.get("replayed", False) for e in log_lines(server, 7)[-3:]] == [False, True, True]


def test_a_new_build_is_answered_from_the_new_build(served):
    server, corpus, store, address = served
    request = post(NAME_QUERY)
    with socket.create_connection(address) as sock:
        before = [exchange(sock, request) for _ in range(3)]
        assert log_lines(server, 3)[-1].get("replayed")
        path = corpus / "entities/organizations/org-edri.md"
        path.write_text(path.read_text().replace("name: ", "name: Replayed No More ", 1))
        build(FolderSource(corpus), store, DataIris(), workers=1)
        head, headers, body = exchange(sock, request)
    assert b"Replayed No More" in body and b"Replayed No More" not in before[-1][2]
    assert headers["etag"] != before[-1][1]["etag"]
    assert not log_lines(server, 4)[-1].get("replayed")


def test_requests_carrying_their_own_id_are_not_replayed(served):
    server, _, _, address = served
    request = post(NAME_QUERY, extra="X-Request-Id: client-chosen-1\r\n")
    with socket.create_connection(address) as sock:
        answers = [exchange(sock, request) for _ in range(3)]
    assert [h["x-request-id"] for _, h, _ in answers] == ["client-chosen-1"] * 3
    assert not any(e.get("replayed") for e in log_lines(server, 3))


def test_bytes_that_are_not_a_whole_request_are_never_the_key(served):
    """A request whose body comes in a later read is not recorded: the same head with another
    body must get that body's answer."""
    server, _, _, address = served
    one = post(NAME_QUERY)
    other = post(NAME_QUERY.replace(ENTITY, "org-xxxx"))   # the same length, another answer
    assert len(one) == len(other)
    split = one.index(b"\r\n\r\n") + 4
    with socket.create_connection(address) as sock:
        for _ in range(3):
            _, _, body = exchange(sock, one[:split], one[split:], pause=0.2)
            assert b"European Digital Rights" in body
        _, _, body = exchange(sock, other[:split], other[split:], pause=0.2)
    assert b'"bindings":[]' in body.replace(b" ", b"")
    assert not any(e.get("replayed") for e in log_lines(server, 4))


def test_what_is_kept_per_process():
    replays = Replays(kept=2)
    head = (b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Sat, 28 Nov 2026 01:00:00 GMT\r\nConnection: keep-alive\r\n"
            b"Content-Length: 2\r\nX-Request-Id: abc\r\n\r\n")
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/sparql", "REMOTE_ADDR": "127.0.0.1"}
    build_a, build_b = object(), object()
    raws = [b"GET /sparql?query=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)]
    assert replays.keep(raws[0], build_a, [head, b"ok"], env, "127.0.0.1")
    replay = replays.find(raws[0], build_a)
    assert replay.answer(b"D", b"R") == head.replace(b"Sat, 28 Nov 2026 01:00:00 GMT", b"D").replace(
        b"abc", b"R") + b"ok"
    assert replays.find(raws[0], build_b) is None, "another build"
    assert replays.find(raws[0] + b"x", build_a) is None
    assert not replays.keep(raws[1], build_a, [head, b"ok"], env, "10.0.0.1"), "the log's client would differ"
    assert not replays.keep(raws[1], build_a, [head.replace(b"200 OK", b"304 Not Modified"), b""], env, "127.0.0.1")
    assert not replays.keep(raws[1], build_a, [head.replace(b"keep-alive", b"close"), b"ok"], env, "127.0.0.1")
    assert not replays.keep(raws[1], build_a, [head, b"ok"], {**env, "HTTP_X_REQUEST_ID": "abc"}, "127.0.0.1")
    assert replays.keep(raws[1], build_a, [head, b"ok"], env, "127.0.0.1")
    assert replays.keep(raws[2], build_a, [head, b"ok"], env, "127.0.0.1")
    assert len(replays.answers) == 1, "full: forgotten at once, then the newest kept"
    assert replays.keep(raws[0], build_b, [head, b"ok"], env, "127.0.0.1")
    assert list(replays.answers) == [raws[0]], "a new build forgets the old one's answers"


@pytest.mark.parametrize("raw,env,whole", [
    (b"GET / HTTP/1.1\r\n\r\n", {"REQUEST_METHOD": "GET"}, True),
    (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", {"REQUEST_METHOD": "GET"}, False),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "3"}, True),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "3"}, False),
    (b"POST / HTTP/1.1\r\n\r\nabc", {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked"}, False),
    (b"POST / HTTP/1.1\r\n\r\nabc", {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "3", "HTTP_EXPECT": "100-continue"},
     False),
    (b"HEAD / HTTP/1.1\r\n\r\n", {"REQUEST_METHOD": "HEAD"}, False),
])
def test_one_whole_request(raw, env, whole):
    assert _one_whole_request(raw, env) is whole


def test_an_answer_is_kept_while_sent_only_up_to_what_may_be_replayed():
    """A serving process keeps what it sends for a request it read whole, in case the answer may
    be sent again; a large one (a dump streamed in parts) is not kept at all."""
    from mg_rdf.web.serve import RECORDED_AT_MOST, _HeadersWithBody

    a, b = socket.socketpair()
    try:
        sock = _HeadersWithBody(a)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        sock.record()
        sock.sendall(head)
        sock.sendall(b"ok")
        assert sock.recorded() == [head, b"ok"]
        assert b.recv(100) == head + b"ok", "the head is sent with the body, in one write"
        assert sock.recorded() is None, "kept once only"
        sock.record()
        part = b"x" * 65536
        b.setblocking(False)
        for _ in range(RECORDED_AT_MOST // len(part) + 2):
            sock.sendall(part)
            while True:
                try:
                    b.recv(1 << 20)
                except BlockingIOError:
                    break
        assert sock.recorded() is None
    finally:
        a.close()
        b.close()
