"""Liveness and readiness, for whoever runs the server (a process manager, a load balancer).

- ``GET /healthz``: the process answers HTTP. Cheap on purpose — it touches no
  store and no worker, so a busy or store-less server is not restarted for it.
- ``GET /readyz``: this server can answer queries now. 200 when the current
  build opens, answers a trivial ``ASK`` in this process, and answers the same
  ``ASK`` through the /sparql worker pool (so a pool that cannot start workers,
  or whose workers are all stuck, shows here); 503 with the reason otherwise —
  no store built yet, a failing store, a busy pool, or a server draining its
  requests before shutting down (``serve`` sets ``DRAINING``).

Both answer small JSON documents that are never cached.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask import Blueprint, Response, current_app

from ..problems import MgRdfError
from .state import query_location
from .query_service import PoolBusy, QueryJob, QueryPool, QueryTimeout, WorkerLost

bp = Blueprint("health", __name__)

DRAINING = "mg_rdf.draining"    # app.extensions key: a threading.Event set when shutdown begins
READY_QUERY = "ASK { GRAPH ?g { ?s ?p ?o } }"   # data lives in named graphs
POOL_CHECK_TIMEOUT = 5.0        # seconds the pool may take to answer the readiness query


@bp.record_once
def _setup(state) -> None:
    state.app.extensions.setdefault(DRAINING, threading.Event())


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process is up and serving HTTP."""
    return _json(200, {"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the store is loaded and answers, here and through the query workers."""
    if current_app.extensions[DRAINING].is_set():
        return _json(503, {"status": "draining", "reason": "the server is shutting down"})
    from . import current_snapshot

    checks: dict[str, Any] = {}
    try:
        snap = current_snapshot()
        build = _current_build(current_app.config["STORE_PATH"])
        started = time.perf_counter()
        answered = bool(snap.store.query(READY_QUERY))
        checks["store_ms"] = _ms(started)
    except MgRdfError as e:
        return _json(503, {"status": "no-store", "reason": str(e)})
    except (OSError, RuntimeError, ValueError) as e:
        return _json(503, {"status": "store-error", "reason": f"{type(e).__name__}: {e}"})
    if not answered:
        return _json(503, {"status": "empty-store", "reason": "the current build holds no triples", **checks})
    pool: QueryPool = current_app.extensions["mg_rdf.query_pool"]
    job = QueryJob(build, READY_QUERY, "json", None, 1)
    started = time.perf_counter()
    try:
        answer = pool.run(job, POOL_CHECK_TIMEOUT)
    except (QueryTimeout, PoolBusy, WorkerLost) as e:
        return _json(503, {"status": "query-workers-unavailable", "reason": str(e), **checks})
    checks["workers_ms"] = _ms(started)
    if answer.status != "ok" or json.loads(answer.body).get("boolean") is not True:
        return _json(503, {"status": "query-workers-failing", "reason": answer.message or answer.status, **checks})
    return _json(200, {"status": "ready", "build": snap.version, "entities": len(snap.entities),
                       "query_workers": pool.size, **checks})


def _current_build(store_path) -> str:
    # Written exactly as /sparql writes it: a worker reopens its store whenever this string changes.
    return query_location(store_path)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _json(status: int, data: dict[str, Any]) -> Response:
    response = Response(json.dumps(data) + "\n", status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
