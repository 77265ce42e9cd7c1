"""Named queries as a web API: the ``queries/`` folder, listed, run, documented.

- ``GET /api/``                    the docs page for people (endpoint ``api.docs``)
- ``GET /api/queries``             every query with its parameters and columns (JSON)
- ``GET /api/queries/{name}?…``    run one: JSON (``application/json``, the default),
  CSV (``text/csv``) or SPARQL results JSON (``application/sparql-results+json``),
  by ``Accept`` or an extension (``/api/queries/{name}.json``, ``.csv``, ``.srj``)
- ``GET /api/openapi.json``        an OpenAPI 3.1 document generated from the headers

The JSON answer is an object whose ``results`` is an array of objects, one per
row: IRIs as strings, literals as their value (integers, decimals and booleans
as JSON numbers and booleans), an unbound value as null. A paginated query takes
``limit`` (1–1000, default 100) and ``offset``; the answer says ``offset``,
``limit`` and ``total`` and has a ``next`` (``prev``) link only when there is a
next (previous) page; every format carries the same links in a ``Link`` header.
A missing, malformed or unknown parameter is a 400 naming it. Queries run on
the snapshot's store in this process: they are ours, and bounded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request, url_for

from .. import config, schema
from ..named_queries import (DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Answer, AnswerCache, NamedQuery, Parameter,
                             ParameterError, UnknownQuery, bind_arguments, csv_rows, find_query, load_queries,
                             page_bounds, records, run, sparql_results_json)
from .negotiation import MAX_ACCEPT_LENGTH, RESULTS_CSV, Representation, by_key, negotiate

bp = Blueprint("api", __name__)

RECORDS_JSON = Representation("json", "application/json")
SPARQL_JSON = Representation("srj", "application/sparql-results+json")
ANSWERS = (RECORDS_JSON, RESULTS_CSV, SPARQL_JSON)
LICENSE = "https://creativecommons.org/licenses/by/4.0/"


def _queries_dir():
    return current_app.config.get("QUERIES_DIR") or config.QUERIES_DIR


def _snapshot():
    from . import current_snapshot

    return current_snapshot()


def _error(status: int, code: str, message: str, parameter: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    return _json(body, status, headers)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None,
          media_type: str = "application/json") -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status, headers, mimetype=media_type)


@bp.after_request
def _cors(response: Response) -> Response:
    # the API is read-only public data: any page may call it
    if request.path.startswith("/api/"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "Link, ETag"
    return response


@bp.get("/api/")
def docs():
    """The docs page: every query with its parameters, columns, an example link and its SPARQL."""
    queries = load_queries(_queries_dir())
    return render_template("api_docs.html", title="Named-query API", queries=queries,
                           example_url=_example_url, types=schema.TYPES, max_limit=MAX_LIMIT,
                           default_limit=DEFAULT_LIMIT)


def _example_url(q: NamedQuery, ext: str | None = None) -> str:
    name = f"{q.name}.{ext}" if ext else q.name
    return _query_url(name, q.example_arguments())


@bp.get("/api/queries")
def list_queries():
    """Every named query: name, title, description, parameters, columns, paging, URLs."""
    return _json([_description(q) for q in load_queries(_queries_dir())])


def _description(q: NamedQuery) -> dict[str, Any]:
    return {
        "name": q.name, "title": q.title, "description": q.description, "paginate": q.paginate,
        "parameters": [{k: v for k, v in {
            "name": p.name, "type": p.type, "description": p.description, "required": p.required,
            "default": p.default, "example": p.example, "entity_types": list(p.entity_types) or None,
            "values": list(p.values) or None}.items() if v is not None} for p in q.params],
        "columns": [{"name": c.name, "type": c.type, "description": c.description, "nullable": c.nullable}
                    for c in q.columns],
        "url": url_for("api.run_query", name=q.name, _external=True),
        "example": _query_url(q.name, q.example_arguments(), external=True),
        "sparql": q.text,
    }


@bp.get("/api/queries/<name>")
def run_query(name: str):
    """Run one named query with the request's parameters, in the format asked for."""
    if len(request.headers.get("Accept", "")) > MAX_ACCEPT_LENGTH:
        return _error(400, "bad-request", "Accept header too long")
    rep: Representation | None
    if "." in name:
        name, ext = name.rsplit(".", 1)
        rep = by_key(ext, ANSWERS)
        if rep is None:
            return _error(404, "not-found", f"no format .{ext}: use .json, .csv or .srj")
    else:
        rep = negotiate(request.accept_mimetypes, ANSWERS, RECORDS_JSON)
        if rep is None:
            return _error(406, "not-acceptable", "answers are application/json, text/csv or "
                          "application/sparql-results+json", headers={"Vary": "Accept"})
    try:
        q = find_query(_queries_dir(), name)
    except UnknownQuery as e:
        return _error(404, "not-found", str(e))
    snap = _snapshot()
    try:
        args = _single_values(q)
        limit, offset = page_bounds(args.pop("limit", None), args.pop("offset", None)) if q.paginate else (0, 0)
        bound = bind_arguments(q, args, snap.iris, snap.entities.__contains__)
    except ParameterError as e:
        return _error(400, e.code, str(e), e.parameter)
    answer = run(snap.store, q, bound, limit or DEFAULT_LIMIT, offset, _answer_cache(), snap.version)
    answer.arguments = {p.name: args.get(p.name) or p.default for p in q.params if args.get(p.name) or p.default}
    links = _links(q, answer)
    response = _render(answer, rep, links, snap.facts.get("attribution"))
    header = [f'<{url}>; rel="{rel}"' for rel, url in links.items() if rel != "self"]
    header.append(f'<{LICENSE}>; rel="license"')
    response.headers["Link"] = ", ".join(header)
    if "." not in request.view_args.get("name", ""):
        response.headers["Vary"] = "Accept"
    # same build, same URL, same format: same bytes
    response.set_etag(hashlib.blake2s(f"{snap.version} {rep.key} {request.full_path}".encode()).hexdigest(),
                      weak=True)
    return response.make_conditional(request)


def _answer_cache() -> AnswerCache:
    # one per app: paging through an answer runs its query once per build
    return current_app.extensions.setdefault("mg_rdf.named_query_answers", AnswerCache())


def _single_values(q: NamedQuery) -> dict[str, str]:
    """The query string as one value per name; a repeated name is an error, not a silent pick."""
    args: dict[str, str] = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise ParameterError(key, "given more than once")
        if key in ("limit", "offset") and not q.paginate:
            raise ParameterError(key, "this query does not paginate", "unknown-parameter")
        args[key] = values[0]
    return args


def _query_url(name: str, args: dict[str, Any], external: bool = False) -> str:
    # the query string is built apart from url_for, whose own keywords (name, _external, …)
    # a parameter could otherwise collide with
    url = url_for("api.run_query", name=name, _external=external)
    return url + ("?" + urlencode(args) if args else "")


def _links(q: NamedQuery, answer: Answer) -> dict[str, str]:
    """self, and next / prev only when such a page exists."""
    base = {k: v for k, v in request.args.items() if k not in ("limit", "offset")}
    name = request.view_args["name"]

    def page(offset: int) -> str:
        extra = {"limit": answer.limit, "offset": offset} if q.paginate else {}
        return _query_url(name, {**base, **extra}, external=True)

    links = {"self": page(answer.offset)}
    if q.paginate and answer.limit:
        if answer.has_next:
            links["next"] = page(answer.offset + answer.limit)
        if answer.offset > 0:
            last_full = max(0, (answer.total or 0) - 1) // answer.limit * answer.limit
            links["prev"] = page(min(max(0, answer.offset - answer.limit), last_full)
                                 if answer.total is not None else max(0, answer.offset - answer.limit))
    return links


def _render(answer: Answer, rep: Representation, links: dict[str, str], attribution: str | None) -> Response:
    if rep is RESULTS_CSV:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(csv_rows(answer))
        return Response(out.getvalue(), 200, mimetype="text/csv", content_type="text/csv; charset=utf-8")
    if rep is SPARQL_JSON:
        return _json(sparql_results_json(answer), media_type=rep.media_type)
    q = answer.query
    body: dict[str, Any] = {"query": q.name, "title": q.title, "parameters": answer.arguments,
                            "columns": answer.columns, "results": records(answer), "count": len(answer.rows)}
    if q.paginate:
        body.update(offset=answer.offset, limit=answer.limit)
        if answer.total is not None:
            body["total"] = answer.total
    body.update(links)
    body["license"] = LICENSE
    if attribution:
        body["attribution"] = attribution
    return _json(body)


# -- the OpenAPI document ------------------------------------------------------------------------

@bp.get("/api/openapi.json")
def openapi():
    """An OpenAPI 3.1 document for /api/queries and each named query, made from the headers."""
    snap = _snapshot()
    entities = {i: e.type for i, e in snap.entities.items()}
    return _json(openapi_document(load_queries(_queries_dir()), request.host_url.rstrip("/"), entities))


_ERROR = {"type": "object", "required": ["error", "message"], "additionalProperties": False,
          "properties": {"error": {"type": "string", "description": "bad-parameter, missing-parameter, "
                                   "unknown-parameter, unknown-entity, not-found, not-acceptable, bad-request"},
                         "message": {"type": "string"},
                         "parameter": {"type": "string", "description": "The parameter at fault."}}}
_COLUMN_SCHEMA = {"iri": {"type": "string"}, "string": {"type": "string"}, "date": {"type": "string"},
                  "integer": {"type": "integer"}, "number": {"type": "number"}, "boolean": {"type": "boolean"}}
_SRJ = {"type": "object", "required": ["head", "results"], "properties": {
    "head": {"type": "object", "required": ["vars"],
             "properties": {"vars": {"type": "array", "items": {"type": "string"}}}},
    "results": {"type": "object", "required": ["bindings"], "properties": {"bindings": {"type": "array", "items": {
        "type": "object", "additionalProperties": {"type": "object", "required": ["type", "value"], "properties": {
            "type": {"enum": ["uri", "literal", "bnode"]}, "value": {"type": "string"},
            "datatype": {"type": "string"}, "xml:lang": {"type": "string"}}}}}}}}}


def parameter_schema(p: Parameter, entities: dict[str, str]) -> dict[str, Any]:
    """The JSON Schema of one parameter's value, as the server checks it.

    An entity parameter lists the ids of this build that it accepts (``entities``:
    id -> type): an id of the right form that names nothing is refused too, so a
    pattern would promise more than the server keeps. (The entity's IRI is also
    accepted, as the description says.)
    """
    if p.type == "entity":
        ids = sorted(i for i, t in entities.items() if not p.entity_types or t in p.entity_types)
        s: dict[str, Any] = {"type": "string", "enum": ids}
    elif p.type == "tag":
        s = {"type": "string", "minLength": 1, "maxLength": 200}
    elif p.type == "integer":
        s = {"type": "integer", "minimum": p.minimum if p.minimum is not None else -(10 ** 15 - 1),
             "maximum": p.maximum if p.maximum is not None else 10 ** 15 - 1}
    elif p.type == "date":
        s = {"type": "string", "pattern": r"^[0-9]{4}(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12][0-9]|3[01]))?)?$",
             "description": "YYYY-MM-DD, YYYY-MM or YYYY (a real date)"}
    elif p.type == "enum":
        s = {"type": "string", "enum": list(p.values)}
    else:
        s = {"type": "string", "maxLength": p.max_length}
    if p.default is not None:
        s["default"] = int(p.default) if p.type == "integer" else p.default
    return s


def openapi_document(queries: list[NamedQuery], server: str, entities: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the named-query API for ``queries`` over a build whose
    entities are ``entities`` (id -> type)."""
    error = {"description": "A parameter is missing, malformed or unknown (the answer names it)",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths: dict[str, Any] = {"/api/queries": {"get": {
        "operationId": "listQueries", "summary": "The named queries", "tags": ["catalogue"],
        "responses": {"200": {"description": "Every named query with its parameters and columns",
                              "content": {"application/json": {"schema": {
                                  "type": "array", "items": {"type": "object", "required": [
                                      "name", "title", "description", "parameters", "columns", "url"]}}}}}}}}}
    for q in queries:
        params = [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                   "schema": parameter_schema(p, entities),
                   **({"example": int(p.example) if p.type == "integer" else p.example} if p.example else {})}
                  for p in q.params]
        if q.paginate:
            params += [{"name": "limit", "in": "query", "required": False, "description": "Rows per page.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                       {"name": "offset", "in": "query", "required": False, "description": "Rows to skip.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}}]
        paths[f"/api/queries/{q.name}"] = {"get": {
            "operationId": q.name, "summary": q.title, "description": q.description, "tags": ["named queries"],
            "parameters": params,
            "responses": {
                "200": {"description": "The rows" + (", one page" if q.paginate else ""),
                        "headers": {"Link": {"description": "next / prev pages and the licence",
                                             "schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": _answer_schema(q)},
                                    "text/csv": {"schema": {"type": "string"}},
                                    "application/sparql-results+json": {
                                        "schema": {"$ref": "#/components/schemas/SparqlResults"}}}},
                "400": error,
                "406": {"description": "None of the formats is acceptable",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}
    return {"openapi": "3.1.0",
            "info": {"title": "Movement Graph named queries", "version": "1",
                     "description": "Named SPARQL queries over the Movement Graph (CC BY 4.0), as a web API. "
                                    "Generated from the headers of the queries/*.rq files.",
                     "license": {"name": "Data: CC BY 4.0", "url": LICENSE}},
            "servers": [{"url": server}], "paths": paths,
            "components": {"schemas": {"Error": _ERROR, "SparqlResults": _SRJ}}}


def _answer_schema(q: NamedQuery) -> dict[str, Any]:
    row = {"type": "object", "additionalProperties": False, "required": [c.name for c in q.columns],
           "properties": {c.name: {**_COLUMN_SCHEMA[c.type], "description": c.description,
                                   **({"type": [_COLUMN_SCHEMA[c.type]["type"], "null"]} if c.nullable else {})}
                          for c in q.columns}}
    props: dict[str, Any] = {
        "query": {"const": q.name}, "title": {"type": "string"},
        "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
        "columns": {"type": "array", "items": {"type": "string"}},
        "results": {"type": "array", "items": row}, "count": {"type": "integer", "minimum": 0},
        "self": {"type": "string"}, "license": {"type": "string"}, "attribution": {"type": "string"}}
    required = ["query", "title", "parameters", "columns", "results", "count", "self", "license"]
    if q.paginate:
        props.update({"offset": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1},
                      "total": {"type": "integer", "minimum": 0}, "next": {"type": "string"},
                      "prev": {"type": "string"}})
        required += ["offset", "limit"]
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}
