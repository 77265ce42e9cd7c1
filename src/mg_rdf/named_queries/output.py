"""Writing an answer out: JSON rows, SPARQL results JSON, CSV; and the ``mg-rdf query --name`` command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pyoxigraph import BlankNode, NamedNode, Store, Variable

from ..problems import MgRdfError
from ..vocab import MG, XSD, DataIris
from .binding import XSD_STRING, Answer, ParameterError, Term, bind_arguments, page_bounds, run
from .header import find_query, load_queries

_INTEGERS = {XSD + t for t in ("integer", "int", "long", "short", "byte", "nonNegativeInteger",
                                "positiveInteger", "unsignedInt", "unsignedLong", "negativeInteger",
                                "nonPositiveInteger", "unsignedShort", "unsignedByte")}
_NUMBERS = {XSD + t for t in ("decimal", "double", "float")}


def json_value(term: Term | None) -> Any:
    """A term as JSON: IRIs as strings, literals as their value (numbers and booleans typed)."""
    if term is None:
        return None
    if isinstance(term, NamedNode):
        return term.value
    if isinstance(term, BlankNode):
        return "_:" + term.value
    dtype = term.datatype.value
    try:
        if dtype in _INTEGERS:
            return int(term.value)
        if dtype in _NUMBERS:
            number = float(term.value)
            return number if number == number and abs(number) != float("inf") else term.value
    except ValueError:
        return term.value
    if dtype == XSD + "boolean":
        return term.value in ("true", "1")
    return term.value


def records(answer: Answer) -> list[dict[str, Any]]:
    return [{c: json_value(t) for c, t in zip(answer.columns, row)} for row in answer.rows]


def sparql_results_json(answer: Answer) -> dict[str, Any]:
    """The rows in the SPARQL 1.1 Query Results JSON Format."""
    def binding(t: Term) -> dict[str, str]:
        if isinstance(t, NamedNode):
            return {"type": "uri", "value": t.value}
        if isinstance(t, BlankNode):
            return {"type": "bnode", "value": t.value}
        b = {"type": "literal", "value": t.value}
        if t.language:
            b["xml:lang"] = t.language
        elif t.datatype != XSD_STRING:
            b["datatype"] = t.datatype.value
        return b
    return {"head": {"vars": answer.columns},
            "results": {"bindings": [{c: binding(t) for c, t in zip(answer.columns, row) if t is not None}
                                     for row in answer.rows]}}


def csv_rows(answer: Answer) -> Iterator[list[str]]:
    """Header then rows, as the SPARQL 1.1 CSV format writes values (IRIs bare, literals' text)."""
    yield answer.columns
    for row in answer.rows:
        yield ["" if t is None else ("_:" + t.value if isinstance(t, BlankNode) else t.value) for t in row]


# -- the command line ----------------------------------------------------------------------------

def entity_exists_in(store: Store, iris: DataIris) -> Callable[[str], bool]:
    """Whether the build in ``store`` has an entity with that id (one of its graphs describes it)."""
    def exists(entity_id: str) -> bool:
        iri = NamedNode(iris.entity(entity_id))   # checked by NamedNode: one escaped token
        return bool(store.query(f"ASK {{ GRAPH ?g {{ ?g <{MG}describes> {iri} }} }}"))
    return exists


def cli_run(store: Store, directory: Path, name: str, params: Sequence[str], fmt: str, iris: DataIris,
            limit: int | None = None, offset: int | None = None) -> tuple[bytes, str | None]:
    """``mg-rdf query --name NAME --param key=value …``: the output, and a note on paging for stderr.

    The same checks as the web API (ParameterError names the parameter). Formats:
    table, csv, json (an array of row objects, as in the API's results) and srj
    (SPARQL results JSON).
    """
    q = find_query(directory, name)
    args: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(key, "write --param key=value")
        if key in args:
            raise ParameterError(key, "given more than once")
        args[key] = value
    if not q.paginate and (limit is not None or offset is not None):
        raise ParameterError("limit" if limit is not None else "offset", "this query does not paginate")
    lim, off = page_bounds(None if limit is None else str(limit), None if offset is None else str(offset))
    bound = bind_arguments(q, args, iris, entity_exists_in(store, iris))
    answer = run(store, q, bound, lim, off)
    if fmt == "table":
        from ..querying import format_results
        out = format_results(_RowsForTable(answer), "table")  # type: ignore[arg-type]
    elif fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(csv_rows(answer))
        out = buffer.getvalue().encode()
    elif fmt == "json":
        out = (json.dumps(records(answer), ensure_ascii=False, indent=1) + "\n").encode()
    elif fmt == "srj":
        out = (json.dumps(sparql_results_json(answer), ensure_ascii=False) + "\n").encode()
    else:
        raise MgRdfError(f"named queries are printed as table, csv, json or srj, not {fmt}")
    note = None
    if q.paginate:
        shown = f"rows {off + 1}–{off + len(answer.rows)}" if answer.rows else "no rows"
        of = f" of {answer.total}" if answer.total is not None else ""
        note = shown + of + (f"; next page: --offset {off + lim}" if answer.has_next else "")
    return out, note


def cli_list(directory: Path) -> str:
    """``mg-rdf query --list``: each named query with its parameters."""
    lines = []
    for q in load_queries(directory):
        lines.append(f"{q.name}  {q.title}{'  (paginated)' if q.paginate else ''}")
        for p in q.params:
            need = "required" if p.required else (f"default {p.default}" if p.default is not None else "optional")
            lines.append(f"    --param {p.name}=…  {p.type}, {need}: {p.description}")
    return "\n".join(lines) + "\n"


class _RowsForTable:
    """An answer shaped like pyoxigraph's QuerySolutions, for ``querying.format_results``'s table."""

    def __init__(self, answer: Answer):
        self.variables = [Variable(c) for c in answer.columns]
        self._rows = [dict(zip(answer.columns, row)) for row in answer.rows]

    def __iter__(self) -> Iterator[dict[str, Term | None]]:
        return iter(self._rows)
