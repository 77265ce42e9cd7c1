"""Answers sent again: what a serving process sent for a request answered from the answer cache,
kept with that request's exact bytes, so that the same bytes on the same build get the same
answer without gunicorn's parser, WSGI, the request guard or Flask.

Why: a cached answer cost ~0.15-0.2 ms of the serving process's CPU, nearly all of it HTTP
parsing, the WSGI environ and response objects, the guard and the access log: as much as
evaluating a small query from the in-memory copy. Here it costs a dictionary look-up, a
readlink (is the build the same?), one ``sendall`` and the log line.

What makes it safe to send the same bytes again:
- the key is the whole request as read from the connection (request line, every header,
  the body), recorded only when those bytes were exactly one complete request (the end of
  the headers plus ``Content-Length`` is the end of the bytes; nothing chunked, no
  ``Expect``) and the answer came from ``PlainQueries`` out of the answer cache (a 200 that
  depends on the query, the negotiated format and the build only: ``REPLAYABLE``);
- the build is part of it: an answer is sent again only while the store's current build is
  the snapshot it was made from (a new build empties the process's record);
- what differs from one answer to the next is made again: ``Date`` and ``X-Request-Id``
  (a request carrying its own id is not recorded: the answer echoes it), and the access
  log line (its time, duration and client; ``"replayed": true``);
- a connection that would be closed after this answer (the process is stopping, or holds
  more than its share of connections) goes the usual way, which closes it.
Anything else, or bytes not recorded, goes the usual way (serve.ServingProcess._handle).
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn import util

from .hardening import REQUEST_ID_HEADER, access_fields

REPLAYABLE = "mg_rdf.replayable"   # environ: the snapshot a cached answer came from (set by PlainQueries)

KEPT = 512                 # answers kept per process (then all forgotten at once)
KEPT_BYTES = 32 << 20      # ... and at most this many bytes of them
LARGEST = 1 << 20          # a larger answer is not kept

_DATE = b"\r\nDate: "
_ID = b"\r\n" + REQUEST_ID_HEADER.encode("ascii") + b": "


class Replay:
    """One answer: its head around the two values made again, its body, its log fields."""

    __slots__ = ("before_date", "between", "after_id", "body", "fields")

    def __init__(self, before_date: bytes, between: bytes, after_id: bytes, body: bytes, fields: dict):
        self.before_date, self.between, self.after_id = before_date, between, after_id
        self.body, self.fields = body, fields

    def answer(self, date: bytes, rid: bytes) -> bytes:
        return b"".join((self.before_date, date, self.between, rid, self.after_id, self.body))


class Replays:
    """The answers one serving process keeps, for one build at a time."""

    def __init__(self, kept: int = KEPT, kept_bytes: int = KEPT_BYTES):
        self.kept, self.kept_bytes = kept, kept_bytes
        self.answers: dict[bytes, Replay] = {}
        self.size = 0
        self.snap: Any = None
        self._date_second = -1
        self._date = b""

    def find(self, raw: bytes, snap: Any) -> Replay | None:
        """The answer kept for ``raw`` on build ``snap`` (the next one kept forgets another build's)."""
        return self.answers.get(raw) if snap is self.snap else None

    def _forget(self, snap: Any = None) -> None:
        """Forget every answer (a new build: ``snap``, or full)."""
        self.answers.clear()
        self.size = 0
        if snap is not None:
            self.snap = snap

    def date(self) -> bytes:
        """``Date``'s value, made once a second (gunicorn makes it for every answer)."""
        now = time.time()
        if int(now) != self._date_second:
            self._date_second = int(now)
            self._date = util.http_date(now).encode("latin-1")
        return self._date

    def keep(self, raw: bytes, snap: Any, sent: list[bytes], environ: dict, peer: str) -> bool:
        """Record the answer ``sent`` (the head, then the body's parts, as written to the socket)
        to the request ``raw``, made from ``snap``; False when it may not be sent again."""
        if not _one_whole_request(raw, environ) or "HTTP_X_REQUEST_ID" in environ:
            return False
        if environ.get("REMOTE_ADDR", "") != peer or len(sent) < 1:
            return False   # the log's client would differ (a proxy's address rewritten)
        head, body = sent[0], b"".join(sent[1:])
        if not head.startswith(b"HTTP/1.1 200 ") or b"\r\nConnection: keep-alive\r\n" not in head:
            return False
        if len(body) > LARGEST or b"\r\nTransfer-Encoding:" in head:
            return False
        d = head.find(_DATE)
        i = head.find(_ID)
        if d < 0 or i < d:
            return False
        d_start = d + len(_DATE)
        d_end = head.index(b"\r\n", d_start)
        i_start = i + len(_ID)
        i_end = head.index(b"\r\n", i_start)
        if snap is not self.snap:
            self._forget(snap)
        if len(self.answers) >= self.kept or self.size + len(body) + len(raw) > self.kept_bytes:
            self._forget()
        fields = access_fields(environ, 200, _headers(head), len(body))
        self.answers[raw] = Replay(head[:d_start], head[d_end:i_start], head[i_end:], body, fields)
        self.size += len(body) + len(raw)
        return True


def _one_whole_request(raw: bytes, environ: dict) -> bool:
    """Are ``raw`` exactly one request, head and body, as the parser read it?"""
    if environ.get("REQUEST_METHOD") not in ("GET", "POST") or "HTTP_EXPECT" in environ:
        return False
    if "HTTP_TRANSFER_ENCODING" in environ:
        return False
    end = raw.find(b"\r\n\r\n")
    length = environ.get("CONTENT_LENGTH") or "0"
    return end >= 0 and length.isdigit() and end + 4 + int(length) == len(raw)


def _headers(head: bytes) -> list[tuple[str, str]]:
    out = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name, value.strip()))
    return out
