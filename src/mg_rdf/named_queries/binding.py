"""Checking a request's values against a query's parameters, binding them, and running the query.

Values become RDF terms (pyoxigraph NamedNode / Literal) and reach the query
only as a one-row ``VALUES`` block written from those terms at the start of the
WHERE group; a term's text form is one escaped token, so no value can change
the query's shape.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union
from urllib.parse import unquote

from pyoxigraph import BlankNode, Literal, NamedNode, Store

from .. import schema
from ..dates import NotADate, typed_date
from ..problems import MgRdfError
from ..vocab import PREFIXES, XSD, DataIris

if TYPE_CHECKING:
    from .header import NamedQuery, Parameter

Term = Union[NamedNode, Literal, BlankNode]

DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 100, 1000, 1_000_000
COUNT_CAP = 100_000        # rows counted for ``total`` at most; past it the total is not reported
_ENTITY_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,15}\Z")


class ParameterError(MgRdfError):
    """A request's parameter is missing, malformed or unknown (HTTP 400); names the parameter."""

    def __init__(self, parameter: str, message: str, code: str = "bad-parameter"):
        self.parameter, self.code = parameter, code
        super().__init__(f"parameter {parameter!r}: {message}")


XSD_STRING, XSD_INTEGER = NamedNode(XSD + "string"), NamedNode(XSD + "integer")


def check_value(p: Parameter, raw: str, iris: DataIris, exists: Callable[[str], bool] | None = None) -> Term:
    """The RDF term for one value of ``p``; ParameterError says what is wrong with it.

    ``exists`` (entity id -> whether the build has it) lets an entity parameter
    refuse ids that name nothing.
    """
    if p.type == "entity":
        entity_id = raw
        prefix = iris.base + "id/"
        if entity_id.startswith(prefix):
            entity_id = entity_id[len(prefix):]
        etype = schema.type_of_id(entity_id)
        if not _ENTITY_ID.match(entity_id) or len(entity_id) > 200 or etype is None:
            raise ParameterError(p.name, f"expected an entity id such as org-access-now or an IRI {prefix}…")
        if p.entity_types and etype.name not in p.entity_types:
            wanted = " or ".join(schema.TYPES[t].prefix + "…" for t in p.entity_types)
            raise ParameterError(p.name, f"expected an id of type {' or '.join(p.entity_types)} ({wanted})")
        if exists is not None and not exists(entity_id):
            raise ParameterError(p.name, f"no entity {entity_id!r} in this build", "unknown-entity")
        return NamedNode(iris.entity(entity_id))
    if p.type == "tag":
        label = raw.strip()
        if label.startswith(iris.tag_scheme):
            label = unquote(label[len(iris.tag_scheme):])
        if not label or len(label) > 200:
            raise ParameterError(p.name, f"expected a tag such as facial-recognition or an IRI {iris.tag_scheme}…")
        return NamedNode(iris.tag(label))
    if p.type == "integer":
        if not _INTEGER.match(raw):
            raise ParameterError(p.name, "expected a whole number")
        n = int(raw)
        if (p.minimum is not None and n < p.minimum) or (p.maximum is not None and n > p.maximum):
            raise ParameterError(p.name, f"must be between {p.minimum} and {p.maximum}")
        return Literal(str(n), datatype=XSD_INTEGER)
    if p.type == "date":
        try:
            if not re.match(r"^[0-9]{4}(-[0-9]{2}){0,2}\Z", raw):
                raise NotADate("")
            d = typed_date(raw)
        except NotADate:
            raise ParameterError(p.name, "expected a date: YYYY-MM-DD, YYYY-MM or YYYY") from None
        return Literal(d.lexical, datatype=NamedNode(d.datatype))
    if p.type == "enum":
        if raw not in p.values:
            raise ParameterError(p.name, f"expected one of: {', '.join(p.values)}")
        return Literal(raw)
    if len(raw) > p.max_length:
        raise ParameterError(p.name, f"longer than {p.max_length} characters")
    return Literal(raw)


def bind_arguments(q: NamedQuery, args: Mapping[str, str], iris: DataIris,
                   exists: Callable[[str], bool] | None = None) -> dict[str, Term]:
    """Check a request's arguments against ``q``'s parameters; the terms to bind, by name.

    An empty value counts as absent (as an empty form field does); defaults fill in;
    an unknown argument is refused so a misspelt name does not silently widen the answer.
    """
    for name in args:
        if q.param(name) is None:
            raise ParameterError(name, "not a parameter of this query", "unknown-parameter")
    bound: dict[str, Term] = {}
    for p in q.params:
        raw = args.get(p.name) or p.default
        if raw is None or raw == "":
            if p.required:
                raise ParameterError(p.name, "is required", "missing-parameter")
            continue
        bound[p.name] = check_value(p, raw, iris, exists)
    return bound


def prepared_text(q: NamedQuery, bound: Mapping[str, Term]) -> str:
    """The query with ``bound`` as a one-row VALUES block opening its WHERE group.

    The block is written from pyoxigraph terms, whose text form is one escaped
    token (IRIs were checked by NamedNode, literals are quoted with escapes). It
    stays on the same line so syntax errors keep their line numbers.
    """
    if not bound:
        return q.text
    names = " ".join(f"?{n}" for n in bound)
    terms = " ".join(str(t) for t in bound.values())
    return f"{q.text[:q.values_at]} VALUES ({names}) {{ ({terms}) }} {q.text[q.values_at:]}"


def page_bounds(raw_limit: str | None, raw_offset: str | None) -> tuple[int, int]:
    """(limit, offset) from a request's ``limit``/``offset``; ParameterError when out of range."""
    def number(name: str, raw: str | None, default: int, low: int, high: int) -> int:
        if raw is None or raw == "":
            return default
        if not re.match(r"^[0-9]{1,9}\Z", raw):
            raise ParameterError(name, "expected a whole number")
        n = int(raw)
        if not low <= n <= high:
            raise ParameterError(name, f"must be between {low} and {high}")
        return n
    return number("limit", raw_limit, DEFAULT_LIMIT, 1, MAX_LIMIT), number("offset", raw_offset, 0, 0, MAX_OFFSET)


# -- running -------------------------------------------------------------------------------------

@dataclass
class Answer:
    query: NamedQuery
    columns: list[str]
    rows: list[list[Term | None]]
    limit: int | None = None            # set when the query paginates
    offset: int = 0
    total: int | None = None            # every row the query has, when it was counted
    has_next: bool = False
    arguments: dict[str, str] = field(default_factory=dict)


def run(store: Store, q: NamedQuery, bound: Mapping[str, Term], limit: int = DEFAULT_LIMIT,
        offset: int = 0, cache: AnswerCache | None = None, build: str = "") -> Answer:
    """Run ``q`` with ``bound`` over ``store`` (default graph = union of all graphs).

    A paginated query answers rows ``offset`` to ``offset + limit``; the rest are
    counted (up to COUNT_CAP) for the total, which is cheap since ORDER BY has
    already produced them all. With a ``cache`` (and the ``build`` the store holds),
    a whole answer of up to ``cache.max_rows`` rows is kept, so paging through it
    runs the query once.
    """
    key = (build, q.name, q.text, tuple((n, str(t)) for n, t in bound.items()))
    kept = cache.get(key) if cache is not None and q.paginate else None
    if kept is not None:
        columns, every = kept
        page = every[offset:offset + limit]
        return Answer(q, columns, page, limit, offset, len(every), len(every) > offset + limit)
    solutions = store.query(prepared_text(q, bound), prefixes=PREFIXES, use_default_graph_as_union=True)
    columns = [v.value for v in solutions.variables]
    if not q.paginate:
        return Answer(q, columns, [[s[c] for c in columns] for s in solutions])
    keep = cache.max_rows if cache is not None else 0
    rows, every, n = [], [], 0
    for s in solutions:
        if offset <= n < offset + limit:
            rows.append([s[c] for c in columns])
        if n < keep:
            every.append(rows[-1] if offset <= n < offset + limit else [s[c] for c in columns])
        n += 1
        if n >= COUNT_CAP and n > offset + limit:
            return Answer(q, columns, rows, limit, offset, None, True)
    if cache is not None and n <= keep:
        cache.put(key, (columns, every))
    return Answer(q, columns, rows, limit, offset, n, n > offset + limit)


class AnswerCache:
    """Whole answers of paginated queries, most recent first, for one process.

    Keyed by the build, so a new build never serves an old answer. Safe to share
    between request threads.
    """

    def __init__(self, size: int = 64, max_rows: int = 5000):
        self.size, self.max_rows = size, max_rows
        self._answers: OrderedDict[tuple, tuple[list[str], list[list[Term | None]]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[list[str], list[list[Term | None]]] | None:
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None:
                self._answers.move_to_end(key)
            return kept

    def put(self, key: tuple, answer: tuple[list[str], list[list[Term | None]]]) -> None:
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
