"""The web app: a Flask application factory and one blueprint per surface.

- ``sparql``     the SPARQL 1.1 Protocol endpoint and its service description
- ``entities``   /id/{id} dereferencing, /data/{id}.{ext} documents, entity pages
- ``pages``      home, search, browse by type
- ``query_page`` the query editor
- ``docs``       the ontology and shapes, for people and machines
- ``dumps``      /dumps/… and /.well-known/void
- ``api``        named queries as a web API (queries/*.rq)
- ``releases``   /releases, /diff/{a}/{b}, /pin/{key}: the pins of a build and what changed
- ``health``     /healthz and /readyz; ``hardening`` wraps every request (limits, headers, log)
- ``federation`` /wikidata: using this graph with Wikidata, both directions
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template

from ..problems import MgRdfError
from ..store import default_store_path
from ..wikidata_links import WIKIDATA_QUERY_SERVICE
from ..vocab import DEFAULT_BASE, DataIris
from ..remote import is_remote
from .state import RemoteStoreHandle, Snapshot, StoreHandle

DEFAULTS: dict[str, Any] = {
    "STORE_PATH": None,            # Path of the store directory (default: MG_RDF_STORE or ~/.local/share/…)
    "BASE": DEFAULT_BASE,          # data IRI base
    "QUERY_TIMEOUT": 10.0,         # seconds a /sparql query may run; a request may ask for less
    "MAX_RESULTS": 10_000,         # rows (SELECT) or triples (CONSTRUCT/DESCRIBE) sent at most
    "QUERY_WORKERS": 2,            # processes that run /sparql queries (killed on timeout)
    "QUERY_WORKERS_MAX": None,     # the pool grows to this while all are busy (default 2 x workers + 2)
    "QUERY_QUEUE_WAIT": 5.0,       # seconds a query waits for a free worker before a 503
    "SERVICE_ALLOWLIST": (WIKIDATA_QUERY_SERVICE,),  # SERVICE endpoints a query may call
    "SERVICE_MAX_RESULTS": None,   # rows one SERVICE block may bring back (default: MAX_RESULTS)
    "MAX_CONTENT_LENGTH": 1 << 20, # request bodies larger than 1 MiB are refused (413)
    "QUERIES_DIR": None,           # the named queries (default: queries/ of the project)
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides DEFAULTS (e.g. {"STORE_PATH": path})."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update({k[len("MG_RDF_"):]: v for k, v in os.environ.items()
                       if k.startswith("MG_RDF_") and k[len("MG_RDF_"):] in ("BASE",)})
    app.config.update(config or {})
    iris = DataIris(app.config["BASE"])
    location = app.config["STORE_PATH"] or default_store_path()
    if is_remote(str(location)):   # a SPARQL server's query endpoint (see mg_rdf.remote)
        app.config["STORE_PATH"] = str(location)
        cache = Path(app.config.get("CACHE_DIR") or default_store_path().parent / "remote-cache")
        app.extensions["mg_rdf.store"] = RemoteStoreHandle(str(location), iris, cache)
    else:
        store_path = Path(location)
        app.config["STORE_PATH"] = store_path
        app.extensions["mg_rdf.store"] = StoreHandle(store_path, iris)
    app.extensions["mg_rdf.iris"] = iris

    from . import api, docs, dumps, entities, federation, hardening, health, pages, query_page, releases, sparql

    for module in (sparql, entities, pages, query_page, docs, dumps, api, health, releases, federation):
        app.register_blueprint(module.bp)
    app.wsgi_app = sparql.PlainQueries(app, app.wsgi_app)   # type: ignore[method-assign]
    hardening.install(app)   # limits, request ids, security headers, access log (see hardening)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"snapshot": current_snapshot, "iris": iris}

    @app.errorhandler(MgRdfError)
    def _no_store(e: MgRdfError):
        return render_template("error.html", title="Not available", message=str(e)), 503

    @app.errorhandler(404)
    def _not_found(e):
        return render_template("error.html", title="Not found",
                               message="There is no page at this address."), 404

    return app


def current_snapshot() -> Snapshot:
    """The store snapshot this request uses (opened once per request)."""
    from flask import current_app

    snap = g.get("mg_snapshot")
    if snap is None:
        snap = g.mg_snapshot = current_app.extensions["mg_rdf.store"].current()
    return snap


def data_iris() -> DataIris:
    from flask import current_app

    return current_app.extensions["mg_rdf.iris"]
