"""What every request and response goes through: limits, a request id, security headers, an access log.

``install(app)`` wraps the Flask app's WSGI callable in ``RequestGuard``, the
outermost layer, so that every answer — the app's, Flask's own error pages, and
the refusals made here before Flask sees the request — gets the same treatment:

- **Limits.** A URL (path and query string) longer than ``MAX_URL_LENGTH`` is
  refused with 414, a header value longer than ``MAX_HEADER_LENGTH`` with 431
  (routes that negotiate refuse a shorter ``Accept`` than that themselves, see
  ``negotiation.MAX_ACCEPT_LENGTH``), and a NUL byte anywhere in the URL or a header with 400: no
  route has a use for one, and refusing it here keeps it out of every query and
  file name below. A request body larger than ``MAX_CONTENT_LENGTH`` is refused
  with 413 here, for every route: at once when its ``Content-Length`` says so
  (nothing is read), and for a body without a length (chunked) by reading at
  most the limit plus one byte; a chunked body within the limit is handed on as
  a buffer with its length set. (Werkzeug alone would silently cut a chunked
  body at the limit, and gunicorn has no body limit of its own.) ``serve`` sets
  the HTTP server's own header limits to match.
- **Request id.** ``X-Request-Id`` on every response: the client's own when it
  is a short token (letters, digits, ``._:+=/-``), else a new random one. It is
  in the access log, so one line can be found from a client's report.
- **Security headers**, added unless a route set its own: a Content-Security-
  Policy that the site's pages satisfy (scripts and style sheets only from this
  server, data-block ``<script type="application/…json">`` elements are not
  scripts; inline ``style=`` attributes allowed because templates size SVG with
  them; no framing, no plugins, forms post only here), ``X-Content-Type-Options:
  nosniff``, ``Referrer-Policy`` and ``X-Frame-Options``. A template that needs an
  inline script calls ``csp_nonce()`` and puts ``nonce="{{ csp_nonce() }}"`` on
  it; the policy of that response then allows that nonce.
- **Access log.** One JSON line per request on the ``mg_rdf.access`` logger,
  written when the body has been sent: time, request id, method, path, status,
  bytes, duration in ms, and for /sparql the query time the endpoint reports
  (its ``Server-Timing: query;dur=…``) or the time limit that stopped it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from flask import Flask, request

LIMIT_DEFAULTS: dict[str, Any] = {
    "MAX_URL_LENGTH": 32 * 1024,    # path + query string; longer GETs should be POSTs (414)
    "MAX_HEADER_LENGTH": 8 * 1024,  # one header's value (431); the HTTP server caps one header line at 8190 bytes
}

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = "mg_rdf.request_id"     # WSGI environ keys
NONCE_KEY = "mg_rdf.csp_nonce"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
_QUERY_TIMING = re.compile(r"(?:^|,)\s*query\s*;\s*dur\s*=\s*([0-9.]+)")

CSP = ("default-src 'none'; script-src 'self'{nonce}; style-src 'self'{nonce}; style-src-attr 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "strict-origin-when-cross-origin"),
                    ("X-Frame-Options", "DENY"))

access_log = logging.getLogger("mg_rdf.access")

StartResponse = Callable[..., Any]


def install(app: Flask) -> None:
    """Wrap ``app`` in the request guard and offer ``csp_nonce()`` to templates."""
    for key, value in LIMIT_DEFAULTS.items():
        app.config.setdefault(key, value)
    app.wsgi_app = RequestGuard(app.wsgi_app, app.config)   # type: ignore[method-assign]
    app.context_processor(lambda: {"csp_nonce": csp_nonce})


def request_id() -> str:
    """The id of the request being handled (as sent back in ``X-Request-Id``)."""
    return request.environ.get(REQUEST_ID_KEY, "")


def csp_nonce() -> str:
    """A nonce for an inline ``<script>``/``<style>`` of this response; the policy then allows it."""
    env = request.environ
    if NONCE_KEY not in env:
        env[NONCE_KEY] = secrets.token_urlsafe(16)
    return env[NONCE_KEY]


def content_security_policy(nonce: str | None = None) -> str:
    return CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else "")


class RequestGuard:
    """WSGI middleware: refuse what no route can use, then label, secure and log every answer."""

    def __init__(self, app: Callable[[dict, StartResponse], Iterable[bytes]], config: dict[str, Any]):
        self.app = app
        self.config = config

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        wall = time.time()
        rid = _request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        environ[REQUEST_ID_KEY] = rid
        seen: dict[str, Any] = {"status": 0, "headers": []}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = int(status[:3])
            headers = _secured(list(headers), rid, environ.get(NONCE_KEY))
            seen["headers"] = headers
            return start_response(status, headers, exc_info)

        refusal = self.refusal(environ)
        app = refusal if refusal is not None else self.app
        try:
            body = app(environ, start)
        except BaseException:
            self._log(environ, wall, started, 500, [], 0)
            raise
        return _LoggedBody(body, lambda sent: self._log(environ, wall, started, seen["status"], seen["headers"],
                                                          sent))

    def refusal(self, environ: dict) -> Callable[[dict, StartResponse], Iterable[bytes]] | None:
        """A small WSGI app answering 400/414/431 when the request breaks a limit, else None."""
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if len(path) + len(query) > int(self.config["MAX_URL_LENGTH"]):
            return _refuse(path, 414, f"The URL is longer than {self.config['MAX_URL_LENGTH']} bytes. "
                                      "Send long SPARQL queries with POST.")
        if "\x00" in path or "\x00" in query or "%00" in query or "%00" in path:
            return _refuse(path, 400, "The URL contains a NUL byte.")
        too_large = self._body_too_large(environ)
        if too_large is not None:
            return _refuse(path, 413, too_large)
        limit = int(self.config["MAX_HEADER_LENGTH"])
        for key, value in environ.items():
            if not key.startswith("HTTP_") or not isinstance(value, str):
                continue
            name = key[5:].replace("_", "-").title()
            if "\x00" in value:
                return _refuse(path, 400, f"The {name} header contains a NUL byte.")
            if len(value) > limit:
                return _refuse(path, 431, f"The {name} header is longer than {limit} bytes.")
        return None

    def _body_too_large(self, environ: dict) -> str | None:
        """Why the body breaks ``MAX_CONTENT_LENGTH``, or None (a chunked body is then buffered)."""
        limit = self.config.get("MAX_CONTENT_LENGTH")
        if limit is None:
            return None
        limit = int(limit)
        message = f"The request body is larger than {limit} bytes."
        length = environ.get("CONTENT_LENGTH", "")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length and not chunked:
            try:
                return message if int(length) > limit else None
            except ValueError:
                return None   # Werkzeug treats a malformed length as none: an empty body
        if not chunked or "wsgi.input" not in environ:
            return None
        # No length up front: read at most one byte past the limit, never the whole stream.
        stream, parts, have = environ["wsgi.input"], [], 0
        while have <= limit:
            part = stream.read(min(64 * 1024, limit + 1 - have))
            if not part:
                break
            parts.append(part)
            have += len(part)
        if have > limit:
            return message
        body = b"".join(parts)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None

    def _log(self, environ: dict, wall: float, started: float, status: int, headers: list[tuple[str, str]],
             sent: int) -> None:
        if access_log.isEnabledFor(logging.INFO):
            log_access(wall, environ.get(REQUEST_ID_KEY, ""), access_fields(environ, status, headers, sent),
                       started, environ.get("REMOTE_ADDR", ""))


def access_fields(environ: dict, status: int, headers: list[tuple[str, str]], sent: int) -> dict[str, Any]:
    """The access log line's fields that the request and its answer decide (see ``log_access``)."""
    fields: dict[str, Any] = {
        "method": environ.get("REQUEST_METHOD", ""),
        "path": _text(environ.get("PATH_INFO", "")),
        "status": status,
        "bytes": sent,
    }
    named = {k.lower(): v for k, v in headers}
    timing = _QUERY_TIMING.search(named.get("server-timing", ""))
    if timing:
        fields["query_ms"] = float(timing.group(1))
    if "mg-rdf-time-limit" in named:
        fields["query_time_limit_s"] = float(named["mg-rdf-time-limit"])
    return fields


def log_access(wall: float, rid: str, fields: dict[str, Any], started: float, client: str,
               **extra: Any) -> None:
    """One access log line: time, request id, ``fields`` (``access_fields``) with the duration
    since ``started`` (perf_counter) after the byte count, the client's address, and ``extra``."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": rid,
    }
    for key, value in fields.items():
        entry[key] = value
        if key == "bytes":
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if client:
        entry["client"] = client
    entry.update(extra)
    access_log.info(json.dumps(entry, ensure_ascii=False))


class _LoggedBody:
    """The response body, passed through while counting bytes; logs the request when closed."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]):
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def _request_id(offered: str) -> str:
    """The client's request id when it is a short token, else a new random one."""
    return offered if _SANE_REQUEST_ID.fullmatch(offered) else new_request_id()


def new_request_id() -> str:
    return secrets.token_hex(16)


def _secured(headers: list[tuple[str, str]], rid: str, nonce: str | None) -> list[tuple[str, str]]:
    present = {name.lower() for name, _ in headers}
    wanted = [("Content-Security-Policy", content_security_policy(nonce)), *SECURITY_HEADERS,
              (REQUEST_ID_HEADER, rid)]
    headers = [(n, v) for n, v in headers if n.lower() != REQUEST_ID_HEADER.lower()]
    headers += [(name, value) for name, value in wanted
                if name.lower() not in present or name == REQUEST_ID_HEADER]
    return headers


def _text(wsgi_str: str) -> str:
    """A WSGI path (bytes as latin-1) as the UTF-8 text it most likely is, for the log."""
    return wsgi_str.encode("latin-1", "replace").decode("utf-8", "replace")


REASONS = {400: ("Bad Request", "bad-request"), 413: ("Content Too Large", "too-large"),
           414: ("URI Too Long", "uri-too-long"),
           431: ("Request Header Fields Too Large", "header-too-large")}


def _refuse(path: str, status: int, message: str) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    """A refusal as plain text, or under /api/ in the API's JSON error shape ({"error", "message"})."""
    reason, code = REASONS[status]
    if path.startswith("/api/"):
        body, media_type = json.dumps({"error": code, "message": message}).encode(), "application/json"
    else:
        body, media_type = (message + "\n").encode(), "text/plain; charset=utf-8"

    def answer(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        start_response(f"{status} {reason}", [("Content-Type", media_type), ("Content-Length", str(len(body)))])
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []

    return answer
