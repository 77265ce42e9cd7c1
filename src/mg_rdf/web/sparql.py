"""The SPARQL 1.1 Protocol endpoint at /sparql (queries only) and its service description.

Requests: ``GET /sparql?query=…``, ``POST`` form-encoded (``query=…``) or
``POST`` with an ``application/sparql-query`` body; ``default-graph-uri`` and
``named-graph-uri`` (repeatable) set the dataset as the protocol says, replacing
the default one. Answers by ``Accept`` (q-values honoured) or a ``format``
parameter naming a format key or media type (``format=json``,
``format=text/csv``): SPARQL JSON, XML, CSV or TSV for SELECT/ASK (default
JSON); Turtle, N-Triples, JSON-LD or RDF/XML for CONSTRUCT/DESCRIBE (default
Turtle). ``GET /sparql`` without a query answers with a SPARQL 1.1 Service
Description (or 303 to the query page ``/query`` for a browser).

What a query sees: the default graph is the union of all named graphs (one per
entity file, plus vocabulary, dataset, ontology and shapes) unless the request
names a dataset. A store built from several pins (``mg-rdf build REPO --rev A --rev B``)
keeps each pin in its own database: ``pin=NAME`` (a pin's name, key or commit prefix;
/releases lists them) runs the query over that pin's graphs only, the current pin answers
without it, and an unknown pin is a 400; the service description takes ``pin=`` too.
The prefixes of ``mg_rdf.vocab.PREFIXES`` (``mg:``, ``schema:``, ``skos:``,
``dcterms:``, ``prov:``, …) are declared, so
``SELECT ?c WHERE { ?c a mg:Campaign }`` works as it is — as with
``mg-rdf query``.

Status codes: 400 for a malformed request or a syntax error (the body is the
parser's message), 403 for any update (``update=``, an
``application/sparql-update`` body, or update text in ``query=``: the endpoint
is read-only and the store is opened read-only), 405 for other methods (with
``Allow``), 406 when no acceptable format exists for the answer, 415 for other
POST content types, and 503 when a query runs past its time limit or every
query worker stays busy. Error bodies are ``text/plain``.

Limits (see also /sparql/limits): a query may run ``QUERY_TIMEOUT`` seconds
(default 10; a request may ask for less with ``timeout=SECONDS``); past that its
worker process is killed and the answer is 503 naming the limit (header
``MG-RDF-Time-Limit``) — never a truncated 200. Queries run in
``QUERY_WORKERS`` worker processes (plus a warm spare), grown up to
``QUERY_WORKERS_MAX`` (default 2 × workers + 2) while all are busy; past that a
request waits ``QUERY_QUEUE_WAIT`` seconds (default 5) and then gets 503 with
``Retry-After`` (see ``query_service``). Answers hold at most ``MAX_RESULTS``
rows or triples; a capped answer carries ``MG-RDF-Truncated: true`` (and ``MG-RDF-Result-Limit``), a
``Link`` to /sparql/limits, and in SPARQL JSON/XML a ``head.link`` to it.
``SERVICE`` is refused (400) unless its endpoint is on ``SERVICE_ALLOWLIST``
(see ``service_policy``). CORS: every answer allows any origin; OPTIONS answers
preflight requests.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
from dataclasses import dataclass
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, redirect, render_template_string, request, url_for
from werkzeug.wsgi import get_current_url
from pyoxigraph import BlankNode, Literal, NamedNode, Triple, serialize

from ..vocab import DCT, PREFIXES, RDF, RDFS, VOID, XSD
from .negotiation import (HTML, NTRIPLES, OXIGRAPH_FORMAT, RDF_DOCUMENTS, RDFXML, RESULTS_JSON, RESULTS_XML,
                          SPARQL_RESULTS, TURTLE, Representation, by_key, negotiate)
from .answer_cache import AnswerCache
from ..config import MEMORY_COPY_MB
from .memory_copy import MemoryCopy
from .replay import REPLAYABLE
from ..remote import is_remote
from ..problems import MgRdfError
from .state import StoreHandle, query_location
from . import current_snapshot
from .query_service import (InProcessRunner, PoolBusy, QueryAnswer, QueryJob, QueryPool, QueryTimeout, WorkerLost,
                            shared_pool)

bp = Blueprint("sparql", __name__)

# SPARQL clients that ask for application/json get JSON-LD for a graph answer.
GRAPH_JSONLD = Representation("jsonld", "application/ld+json", ("application/json",))
GRAPH_ANSWERS = (TURTLE, NTRIPLES, GRAPH_JSONLD, RDFXML)
FORMAT_NAMES = {"turtle": "ttl", "ntriples": "nt", "n-triples": "nt", "json-ld": "jsonld", "rdfxml": "rdf",
                "rdf/xml": "rdf", "srj": "json", "srx": "xml"}
GRAPH_OF_RESULTS_FORMAT = {RESULTS_JSON: GRAPH_JSONLD, RESULTS_XML: RDFXML}
EXPOSED_HEADERS = "MG-RDF-Truncated, MG-RDF-Result-Limit, MG-RDF-Time-Limit, Link, Server-Timing"
TEXT = "text/plain; charset=utf-8"

# The first keyword after the prologue (BASE, PREFIX, comments) says what kind of request this is.
# The prologue is matched possessively (*+): backtracking into comments would be exponential.
_PROLOGUE = r"(?:\s|#[^\n\r]*|BASE\s*<[^>]*>|PREFIX\s*[^\s:<]*:\s*<[^>]*>|VERSION\s*(?:\"[^\"]*\"|'[^']*'))*+"
_FORM = re.compile(r"\ufeff?" + _PROLOGUE + r"(SELECT|ASK|CONSTRUCT|DESCRIBE|INSERT|DELETE|LOAD|CLEAR|CREATE|DROP"
                   r"|COPY|MOVE|ADD|WITH)\b", re.IGNORECASE)
UPDATE_WORDS = {"INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "COPY", "MOVE", "ADD", "WITH"}
READ_ONLY = ("This endpoint is read-only: SPARQL Update is not accepted. "
             "Send queries (SELECT, ASK, CONSTRUCT, DESCRIBE) with query=.")


class ProtocolError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class QueryRequest:
    query: str
    default_graph: list[str] | None
    named_graphs: list[str] | None
    format: str | None
    timeout: float | None
    pin: str | None = None     # a pin of a several-pin store (see web/releases.py): query its database


@bp.record_once
def _setup(state) -> None:
    app = state.app
    if app.config.get("QUERY_IN_PROCESS"):   # set by `mg-rdf serve`: one request per process at a time
        app.extensions["mg_rdf.query_pool"] = InProcessRunner()
        mb = float(app.config.get("MEMORY_COPY_MB", MEMORY_COPY_MB))
        app.extensions["mg_rdf.memory_copy"] = MemoryCopy(int(mb * 1_000_000))
        return
    pool = shared_pool(int(app.config["QUERY_WORKERS"]), app.config.get("QUERY_WORKERS_MAX"),
                       float(app.config.get("QUERY_QUEUE_WAIT", 5.0)))
    app.extensions["mg_rdf.query_pool"] = pool
    if not app.config.get("TESTING"):
        pool.start()   # warm workers before the first query; tests start them on first use


@bp.after_request
def _cors(response: Response) -> Response:
    for name, value in _CORS:
        response.headers[name] = value
    return response


@bp.route("/sparql", methods=["GET", "POST", "OPTIONS"], provide_automatic_options=False)
def endpoint() -> Response:
    """The SPARQL 1.1 Protocol query operation, and the service description."""
    if request.method == "OPTIONS":
        return _preflight()
    decided = request.environ.get(DECIDED)
    if decided is not None:   # the watchdog's 503 for a query past its limit (see _answer_later)
        return Response(decided.message + "\n", decided.status, headers=decided.headers, content_type=TEXT)
    try:
        req = _read_request()
        if req is None:
            return _service_description()
        return _answer(req)
    except ProtocolError as e:
        return Response(e.message + "\n", e.status, headers=e.headers, content_type=TEXT)


class PlainQueries:
    """WSGI: the /sparql requests most clients send, answered without Flask's request machinery.

    ``POST`` with an ``application/sparql-query`` body and no parameters, or ``GET`` with
    ``query=`` as the only parameter; a SELECT/ASK/CONSTRUCT/DESCRIBE; an ``Accept`` header
    (and root URL) this process has negotiated before; no conditional or range headers; a
    local store. For those, Flask's request context, routing, request and response objects
    were a fifth to a third of a small query's time. The answer is made by the same code as
    the endpoint's (``_run``: cache, time limit, cap, SERVICE policy; ``_ok_headers``), and
    it is the same answer (``tests/test_sparql_plain.py`` compares them). Anything else —
    errors included, which the endpoint then answers — goes to Flask unchanged. It sits
    inside the request guard (limits, request id, security headers, access log)."""

    CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE",
                   "HTTP_RANGE", "HTTP_IF_RANGE")

    def __init__(self, app: Any, wsgi_app: Callable[..., Any]):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/sparql" and self.app.config.get("SPARQL_PLAIN_PATH", True):
            answered = self._answer(environ, start_response)
            if answered is not None:
                return answered
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ: dict, start_response: Callable[..., Any]) -> list[bytes] | None:
        if DECIDED in environ or any(h in environ for h in self.CONDITIONAL):
            return None
        query = self._query(environ)
        if query is None or not query.strip():
            return None
        form = query_form(query)
        formats = _negotiated.get((environ.get("HTTP_ACCEPT", ""), form))
        link = _links.get(_root_url(environ))
        if form not in ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE") or formats is None or link is None:
            return None   # Flask negotiates (and remembers) it, or answers 403/406
        solutions, graph = formats
        if (solutions if form in ("SELECT", "ASK") else graph) is None:
            return None
        handle = self.app.extensions["mg_rdf.store"]
        if not isinstance(handle, StoreHandle):
            return None
        try:
            snap = handle.current()
            answer, hit = _run(self.app, environ, snap, QueryRequest(query, None, None, None, None), solutions,
                               graph, link, _fresh(environ.get("HTTP_CACHE_CONTROL", "")))
        except (ProtocolError, MgRdfError):
            return None   # the endpoint makes every answer that is not a 200
        if hit:
            environ[REPLAYABLE] = snap   # the same request bytes may get these bytes again (replay.py)
        start_response("200 OK", _ok_headers(answer, self.app.config, link, hit) + _CORS)
        return [answer.body]

    @staticmethod
    def _query(environ: dict) -> str | None:
        method = environ.get("REQUEST_METHOD")
        try:
            if method == "GET":
                qs = environ.get("QUERY_STRING", "")
                if not qs.startswith("query=") or "&" in qs:
                    return None
                query = _decoded.get(qs)
                if query is None:
                    query = unquote_plus(qs[6:], encoding="utf-8", errors="strict")
                    if len(_decoded) >= DECODED_KEPT:
                        _decoded.clear()
                    if len(qs) <= DECODED_LONGEST:
                        _decoded[qs] = query
                return query
            if (method != "POST" or environ.get("QUERY_STRING") or environ.get("CONTENT_TYPE") != "application/sparql-query"
                    or not environ.get("CONTENT_LENGTH", "").isdigit()):
                return None
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            environ["wsgi.input"] = io.BytesIO(body)   # read again by Flask if it answers after all
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None


_CORS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSED_HEADERS)]

# A GET's query string -> the query it encodes, for queries sent again (a client's usual ones,
# and every cached answer): urllib's unquote is Python, 16-18 us for a 500-character query.
_decoded: dict[str, str] = {}
DECODED_KEPT = 1024       # query strings remembered (then forgotten all at once)
DECODED_LONGEST = 8192    # longer ones are decoded every time


@bp.get("/sparql/limits")
def limits() -> str:
    """What the endpoint's limits are, for people following a truncated answer's link."""
    cfg = current_app.config
    return render_template_string(_LIMITS_PAGE, timeout=cfg["QUERY_TIMEOUT"], cap=cfg["MAX_RESULTS"],
                                  allowlist=tuple(cfg["SERVICE_ALLOWLIST"]), title="SPARQL endpoint limits")


def _preflight() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    asked = request.headers.get("Access-Control-Request-Headers", "")
    response.headers["Access-Control-Allow-Headers"] = asked or "Accept, Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers["Allow"] = "GET, HEAD, POST, OPTIONS"
    return response


def _read_request() -> QueryRequest | None:
    """The protocol parameters of this request, or None for a service-description request."""
    if request.method == "GET":
        params, queries = request.args, request.args.getlist("query")
        updates = request.args.getlist("update")
    else:
        mimetype = request.mimetype
        if mimetype == "application/x-www-form-urlencoded":
            params = request.values
            queries, updates = params.getlist("query"), params.getlist("update")
        elif mimetype == "application/sparql-query":
            params, updates = request.args, request.args.getlist("update")
            if "query" in request.args:
                raise ProtocolError(400, "The query is in the body (application/sparql-query): "
                                         "do not also send a query parameter.")
            try:
                queries = [request.get_data(cache=False).decode("utf-8")]
            except UnicodeDecodeError:
                raise ProtocolError(400, "The query must be encoded in UTF-8.") from None
        elif mimetype == "application/sparql-update":
            raise ProtocolError(403, READ_ONLY)
        else:
            raise ProtocolError(415, f"POST needs Content-Type application/x-www-form-urlencoded (query=…) or "
                                     f"application/sparql-query (the query as the body), not {mimetype or 'none'}.")
    if updates and queries:
        raise ProtocolError(400, "Send either query or update, not both (and this endpoint accepts no update).")
    if updates:
        raise ProtocolError(403, READ_ONLY)
    if len(queries) > 1:
        raise ProtocolError(400, f"Send exactly one query parameter (got {len(queries)}).")
    default_graph = params.getlist("default-graph-uri")
    named_graphs = params.getlist("named-graph-uri")
    if not queries:
        if request.method == "GET" and not default_graph and not named_graphs:
            return None
        raise ProtocolError(400, "Missing the query: send query=… (or a POST body of type application/sparql-query).")
    if not queries[0].strip():
        raise ProtocolError(400, "The query is empty.")
    for iri in default_graph + named_graphs:
        try:
            NamedNode(iri)
        except ValueError as e:
            raise ProtocolError(400, f"Not an absolute IRI for a graph: {iri!r} ({e})") from None
    dataset_given = bool(default_graph or named_graphs)
    return QueryRequest(queries[0], default_graph if dataset_given else None,
                        named_graphs if dataset_given else None, params.get("format"), _read_timeout(params),
                        params.get("pin") or None)


def _read_timeout(params) -> float | None:
    raw = params.get("timeout")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ProtocolError(400, f"timeout must be a positive number of seconds, not {raw!r}.")
    return value


def query_form(text: str) -> str | None:
    """SELECT, ASK, CONSTRUCT, DESCRIBE or an update keyword: the query's first keyword after its prologue."""
    m = _FORM.match(text)
    return m.group(1).upper() if m else None


def _choose_formats(fmt: str | None, form: str | None) -> tuple[Representation | None, Representation | None]:
    """(format for solutions, format for graphs) from ``format=`` or else ``Accept``; only the one
    the query's form needs when the form is known."""
    if fmt:
        name = FORMAT_NAMES.get(fmt.strip().lower(), fmt)
        solutions, graph = by_key(name, SPARQL_RESULTS), by_key(name, GRAPH_ANSWERS)
        graph = graph or GRAPH_OF_RESULTS_FORMAT.get(solutions)
        if solutions is None and graph is None:
            raise ProtocolError(406, f"Unknown format {fmt!r}. " + _FORMATS_HELP)
        return solutions, graph
    raw = request.headers.get("Accept", "")
    known = _negotiated.get((raw, form))
    if known is not None:
        return known
    accept = request.accept_mimetypes
    solutions = negotiate(accept, SPARQL_RESULTS, RESULTS_JSON) if form not in ("CONSTRUCT", "DESCRIBE") else None
    graph = negotiate(accept, GRAPH_ANSWERS, TURTLE) if form not in ("SELECT", "ASK") else None
    _remember(_negotiated, (raw, form), (solutions, graph))
    return solutions, graph


def _remember(memo: dict, key: Any, value: Any) -> None:
    """Keep ``value`` under ``key`` in one of this module's memos, emptied when full: clients send
    few distinct headers and hosts, and a flood of new ones only costs the memo its contents."""
    if len(memo) >= _NEGOTIATED_MAX:
        memo.clear()
    memo[key] = value


# (Accept header, query form) -> the formats negotiated for it: the same few headers come again
# and again (each client library sends one), and parsing them is a tenth of a small query's time.
_negotiated: dict[tuple[str, str | None], tuple[Representation | None, Representation | None]] = {}
_NEGOTIATED_MAX = 256


_FORMATS_HELP = ("SELECT and ASK answers: json, xml, csv, tsv (application/sparql-results+json, …); "
                 "CONSTRUCT and DESCRIBE answers: ttl, nt, jsonld, rdf (text/turtle, …).")


def _answer(req: QueryRequest) -> Response:
    form = query_form(req.query)
    if form in UPDATE_WORDS:
        raise ProtocolError(403, READ_ONLY)
    solutions, graph = _choose_formats(req.format, form)
    needed = solutions if form in ("SELECT", "ASK") else graph if form in ("CONSTRUCT", "DESCRIBE") else True
    if needed is None or (solutions is None and graph is None):
        raise ProtocolError(406, f"No acceptable format for the answer of this {form or 'query'}. " + _FORMATS_HELP)
    link = _limits_link()
    answer, hit = _run(current_app._get_current_object(), request.environ, current_snapshot(), req, solutions, graph,
                       link, _fresh(request.headers.get("Cache-Control", "")))
    return _ok_response(answer, current_app.config, link, hit)


def _fresh(cache_control: str) -> bool:
    """The client asks for an answer not taken from the cache."""
    return "no-cache" in cache_control or "no-store" in cache_control


def _run(app: Any, environ: dict, snap: Any, req: QueryRequest, solutions: Representation | None,
         graph: Representation | None, link: str, fresh: bool) -> tuple[QueryAnswer, bool]:
    """The answer to ``req`` in the negotiated formats, from the answer cache or evaluated, and
    whether it came from the cache; a ProtocolError for every answer that is not a 200."""
    cfg = app.config
    build = _current_build(cfg["STORE_PATH"])
    if req.pin:   # the pin's own Oxigraph directory: the workers open it like any build
        from .releases import pin_directory

        found = pin_directory(req.pin)
        if found is None:
            raise ProtocolError(400, f"This store has no pin called {req.pin!r}: /releases lists its pins.")
        build = str(found[1])
    limit = float(cfg["QUERY_TIMEOUT"])
    timeout = min(req.timeout, limit) if req.timeout else limit
    job = QueryJob(build, req.query, solutions.key if solutions else None, graph.key if graph else None,
                   int(cfg["MAX_RESULTS"]), req.default_graph, req.named_graphs, link,
                   list(cfg["SERVICE_ALLOWLIST"]), cfg.get("SERVICE_MAX_RESULTS"))
    cache: AnswerCache = app.extensions.setdefault("mg_rdf.answer_cache", AnswerCache())
    cacheable = "service" not in req.query.lower()
    key = (build, snap.version, req.query, job.solutions_format, job.graph_format, job.max_results,
           tuple(req.default_graph or ()), tuple(req.named_graphs or ()), req.default_graph is None,
           req.named_graphs is None)
    answer = cache.get(key) if cacheable and not fresh else None
    if answer is not None:
        return answer, True
    pool: QueryPool | InProcessRunner = app.extensions["mg_rdf.query_pool"]
    try:
        if isinstance(pool, InProcessRunner):
            stopped = _stopped(QueryTimeout(timeout, remote=bool(job.service_allowlist) and not cacheable), link)
            store = _open_store_of(app, snap, build, req.pin)
            answer = pool.run(job, timeout, store, _answer_later(app, environ, stopped))
            answer.memory = store is not None and store is not snap.store
        else:
            answer = pool.run(job, timeout)
    except QueryTimeout as e:
        raise _stopped(e, link) from None
    except PoolBusy as e:
        raise ProtocolError(503, f"The query service is busy: {e}. Try again shortly.", {"Retry-After": "2"}) from None
    except WorkerLost as e:  # the worker died under this query (killed, out of memory): it is replaced
        raise ProtocolError(503, f"The query could not be answered: {e}. Try again.", {"Retry-After": "1"}) from None
    if answer.status == "syntax-error":
        raise ProtocolError(400, f"SPARQL syntax error: {answer.message}")
    if answer.status == "service-refused":   # decided by service_policy before evaluation
        raise ProtocolError(400, answer.message)
    if answer.status == "not-acceptable":
        raise ProtocolError(406, f"No acceptable format for {answer.message}. " + _FORMATS_HELP)
    if answer.status != "ok":
        raise ProtocolError(500, f"The query failed: {answer.message}")
    if cacheable:
        cache.put(key, answer, len(answer.body) + len(req.query))
    return answer, False


def _limits_link() -> str:
    """The absolute URL of /sparql/limits for this request's host and root (made once for each)."""
    key = _root_url(request.environ)
    link = _links.get(key)
    if link is None:
        link = url_for("sparql.limits", _external=True)
        _remember(_links, key, link)
    return link


_links: dict[str, str] = {}


def _root_url(environ: dict) -> str:
    """The request's root URL (werkzeug's reading of scheme, host and script root), remembered
    for the parts of the environ it depends on: werkzeug's IRI decoding cost as much as the rest
    of a cached answer's path."""
    key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
           environ.get("SERVER_PORT"), environ.get("SCRIPT_NAME"))
    url = _roots.get(key)
    if url is None:
        url = get_current_url(environ, root_only=True)
        _remember(_roots, key, url)
    return url


_roots: dict[tuple, str] = {}


def _stopped(e: QueryTimeout, link: str) -> ProtocolError:
    return ProtocolError(503, f"Query stopped: {e}. Ask a narrower question (LIMIT, fewer joins) or see {link}.",
                         {"MG-RDF-Time-Limit": f"{e.limit:g}"})


DECIDED = "mg_rdf.sparql_decided"   # WSGI environ key: the answer is this ProtocolError (see _answer_later)


def _answer_later(app: Any, environ: dict, error: ProtocolError) -> Callable[[], None] | None:
    """What the serving process's watchdog does when this request's query outlives its limit:
    answer ``error`` on the client's connection (the request thread is still inside pyoxigraph).
    The answer is made by the whole app — this endpoint, CORS, the request guard's headers and
    access log — from a copy of the request that carries the decision, so it is the same answer
    as any other 503 of this endpoint; then the watchdog ends the process."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None

    def write() -> None:
        env = dict(environ, **{DECIDED: error, "wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"})
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            got["status"], got["headers"] = status, headers
            return lambda data: None

        body_parts = app.wsgi_app(env, start_response)
        try:
            body = b"".join(body_parts)
        finally:
            close = getattr(body_parts, "close", None)
            if close is not None:
                close()   # the access log line
        head = [f"HTTP/1.1 {got['status']}", *(f"{k}: {v}" for k, v in got["headers"]),
                f"Date: {formatdate(usegmt=True)}", "Connection: close", "", ""]
        sock.settimeout(5)
        sock.sendall("\r\n".join(head).encode("latin-1") + (b"" if env.get("REQUEST_METHOD") == "HEAD" else body))
        getattr(sock, "flush", lambda: None)()   # serve's socket may hold a lone response head

    return write


def _open_store_of(app: Any, snap: Any, build: str, pin: str | None) -> Any:
    """The current snapshot's open store when ``build`` is its directory (a serving process then
    keeps one store open per build, not two), or this process's in-memory copy of it once made
    (memory_copy.py); else None (the runner opens ``build`` itself)."""
    if pin:
        return None
    if snap.store_root is None and os.path.basename(build) == snap.build_dir.name and not is_remote(build):
        copy: MemoryCopy | None = app.extensions.get("mg_rdf.memory_copy")
        return snap.store if copy is None else copy.of(snap)
    return None


def _ok_response(answer: QueryAnswer, cfg: Any, link: str, hit: bool) -> Response:
    """A 200 with the answer (or a 304 when the client has these bytes: ETag is their hash)."""
    response = Response(answer.body, 200, headers=_ok_headers(answer, cfg, link, hit))
    return response.make_conditional(request)


def _ok_headers(answer: QueryAnswer, cfg: Any, link: str, hit: bool) -> list[tuple[str, str]]:
    """The headers of a 200 with ``answer`` (CORS is added with every answer of this blueprint)."""
    rep = _representation(answer.format, answer.kind)
    headers = [("Content-Type", rep.content_type), ("Content-Length", str(len(answer.body))), ("Vary", "Accept"),
               ("Server-Timing", f"query;dur={0 if hit else answer.seconds * 1000:.1f}"
                                 + (';desc="memory"' if answer.memory and not hit else "")),
               ("MG-RDF-Cache", "hit" if hit else "miss"),
               ("ETag", answer.etag())]
    if answer.truncated:
        headers += [("MG-RDF-Truncated", "true"), ("MG-RDF-Result-Limit", str(cfg["MAX_RESULTS"])),
                    ("Link", f'<{link}>; rel="describedby"')]
    return headers


def _current_build(store_path) -> str:
    """The build directory ``current`` points at now (a readlink: cheap enough for every query),
    or the remote store's URL."""
    try:
        return query_location(store_path)
    except OSError:
        raise ProtocolError(503, f"No store has been built at {store_path} yet.") from None


def _representation(key: str, kind: str) -> Representation:
    offers = GRAPH_ANSWERS if kind == "graph" else SPARQL_RESULTS
    return next(r for r in offers if r.key == key)


_description_cache: dict[tuple, bytes] = {}
_description_lock = threading.Lock()


def _service_description() -> Response:
    fmt = request.args.get("format")
    offers = (*RDF_DOCUMENTS, HTML)
    if fmt:
        rep = by_key(FORMAT_NAMES.get(fmt.strip().lower(), fmt), offers)
        if rep is None:
            raise ProtocolError(406, f"Unknown format {fmt!r} for the service description: use ttl, nt, jsonld or rdf.")
    else:
        rep = negotiate(request.accept_mimetypes, offers, TURTLE)
        if rep is None:
            raise ProtocolError(406, "The service description is available as text/turtle, application/ld+json, "
                                     "application/n-triples, application/rdf+xml, or text/html (the query page).")
    if rep is HTML:
        return redirect(url_for("query_page.query"), 303)
    from .releases import request_snapshot

    snapshot, _ = request_snapshot()   # ?pin=NAME describes that pin's graphs
    cfg = current_app.config
    endpoint_url = url_for("sparql.endpoint", _external=True)
    key = (snapshot.version, endpoint_url, rep.key, tuple(cfg["SERVICE_ALLOWLIST"]), cfg["QUERY_TIMEOUT"],
           cfg["MAX_RESULTS"])
    body = _description_cache.get(key)
    if body is None:
        with _description_lock:
            body = describe_service(snapshot, endpoint_url, rep.key, federated=bool(cfg["SERVICE_ALLOWLIST"]),
                                    timeout=cfg["QUERY_TIMEOUT"], max_results=cfg["MAX_RESULTS"])
            if len(_description_cache) > 16:
                _description_cache.clear()
            _description_cache[key] = body
    response = Response(body, 200, content_type=rep.content_type)
    response.headers["Vary"] = "Accept"
    response.headers["ETag"] = f'"{snapshot.version}-sd-{rep.key}"'
    return response.make_conditional(request)


SD = "http://www.w3.org/ns/sparql-service-description#"
W3C_FORMATS = "http://www.w3.org/ns/formats/"
SD_PREFIXES = {**PREFIXES, "sd": SD, "formats": W3C_FORMATS, "ent": "http://www.w3.org/ns/entailment/"}
RESULT_FORMAT_IRIS = ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV", "SPARQL_Results_TSV",
                      "Turtle", "N-Triples", "JSON-LD", "RDF_XML")


def describe_service(snapshot, endpoint_url: str, fmt: str, federated: bool, timeout: float,
                     max_results: int) -> bytes:
    """The SPARQL 1.1 Service Description of this endpoint, serialised as ``fmt`` (ttl, nt, jsonld, rdf).

    The default dataset is the store's VoID dataset (its description is copied from the dataset
    graph), with the union default graph and every named graph, each with its triple count.
    """
    store, iris = snapshot.store, snapshot.iris

    def n(iri: str) -> NamedNode:
        return NamedNode(iri)

    def count(value: int) -> Literal:
        return Literal(str(value), datatype=n(XSD + "integer"))

    a = n(RDF + "type")
    service, dataset, default = BlankNode("service"), n(iris.dataset), BlankNode("default-graph")
    triples = [Triple(service, a, n(SD + "Service")),
               Triple(service, n(SD + "endpoint"), n(endpoint_url)),
               Triple(service, n(SD + "supportedLanguage"), n(SD + "SPARQL11Query")),
               Triple(service, n(SD + "feature"), n(SD + "UnionDefaultGraph")),
               Triple(service, n(SD + "defaultEntailmentRegime"), n("http://www.w3.org/ns/entailment/Simple")),
               Triple(service, n(SD + "defaultDataset"), dataset),
               Triple(service, n(RDFS + "comment"), Literal(
                   f"Read-only SPARQL 1.1 endpoint. The default graph is the union of all named graphs (of the "
                   f"current pin; add pin=NAME to query another pin of the store, listed at /releases); the "
                   f"prefixes {', '.join(p + ':' for p in PREFIXES)} are declared. Queries stop after "
                   f"{timeout:g} s (503); answers hold at most {max_results} rows or triples "
                   f"(MG-RDF-Truncated: true otherwise). SERVICE is "
                   f"{'limited to an allow-list' if federated else 'refused'}.")),
               Triple(dataset, a, n(SD + "Dataset")),
               Triple(dataset, n(SD + "defaultGraph"), default),
               Triple(default, a, n(SD + "Graph")),
               Triple(default, n(DCT + "description"), Literal("The union of all named graphs.")),
               Triple(default, n(VOID + "triples"), count(_distinct_triples(store)))]
    triples += [Triple(service, n(SD + "resultFormat"), n(W3C_FORMATS + f)) for f in RESULT_FORMAT_IRIS]
    if federated:
        triples.append(Triple(service, n(SD + "feature"), n(SD + "BasicFederatedQuery")))
    q = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY STR(?g)"
    for i, row in enumerate(store.query(q)):
        named, graph = BlankNode(f"named-graph-{i}"), BlankNode(f"graph-{i}")
        triples += [Triple(dataset, n(SD + "namedGraph"), named), Triple(named, a, n(SD + "NamedGraph")),
                    Triple(named, n(SD + "name"), row["g"]), Triple(named, n(SD + "graph"), graph),
                    Triple(graph, a, n(SD + "Graph")), Triple(graph, n(VOID + "triples"), row["n"])]
    # The dataset's own VoID/DCAT description: title, licence, attribution, counts by class.
    triples += list(store.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{iris.dataset_graph}> {{ ?s ?p ?o }} }}"))
    rdf_format = OXIGRAPH_FORMAT[fmt]
    return serialize(triples, format=rdf_format, prefixes=SD_PREFIXES if fmt == "ttl" else None)


def _distinct_triples(store) -> int:
    q = "SELECT (COUNT(*) AS ?n) WHERE { SELECT DISTINCT ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } } }"
    return int(next(iter(store.query(q)))["n"].value)


_LIMITS_PAGE = """{% extends "base.html" %}
{% block main %}
<h1>SPARQL endpoint limits</h1>
<p>The endpoint at <a href="{{ url_for('sparql.endpoint') }}"><code>/sparql</code></a> answers SPARQL 1.1 queries
(read-only) so that one heavy query cannot slow everyone else down:</p>
<ul>
  <li><strong>Time:</strong> a query may run {{ '%g' % timeout }} seconds. A request may ask for less with
      <code>timeout=SECONDS</code>. A query that runs longer is stopped and answered with
      <code>503 Service Unavailable</code> and a message naming the limit — never with a partial result.</li>
  <li><strong>Size:</strong> an answer holds at most {{ cap }} rows (SELECT) or triples (CONSTRUCT, DESCRIBE).
      When there were more, the answer carries the HTTP header <code>MG-RDF-Truncated: true</code>, and SPARQL
      JSON and XML answers name this page in <code>head.link</code>. Use <code>LIMIT</code> and
      <code>OFFSET</code> to page through large answers.</li>
  <li><strong>SERVICE:</strong> federated queries may only call
      {% if allowlist %}these endpoints: {% for a in allowlist %}<code>{{ a }}</code>{{ ", " if not loop.last }}{% endfor %}.
      {% else %}no endpoint: this server allows none.{% endif %}</li>
  <li><strong>Dataset:</strong> the default graph is the union of all named graphs (one per entity file), unless a
      request names graphs with <code>default-graph-uri</code> / <code>named-graph-uri</code>. A store of several
      releases answers from its current one; <code>pin=NAME</code> queries another
      (see <a href="{{ url_for('releases.releases_page') }}">releases</a>). The prefixes <code>mg:</code>, <code>schema:</code>, <code>skos:</code>, <code>dcterms:</code>, <code>prov:</code> and
      others are declared for you.</li>
</ul>
{% endblock %}"""
