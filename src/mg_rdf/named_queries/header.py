"""Reading a query file: the ``#+`` header (YAML) and its checks against the SPARQL.

A malformed header is a QueryFileError naming the file and line; a header that
contradicts its query (a parameter the query never uses, columns that are not
what it selects, paging without ORDER BY) is one too, found when the folder is
loaded rather than when someone calls the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pyoxigraph import QuerySolutions, Store

from .. import schema
from ..problems import MgRdfError
from ..vocab import PREFIXES, DataIris
from .binding import ParameterError, check_value, prepared_text

PARAM_TYPES = ("entity", "tag", "string", "integer", "date", "enum")
COLUMN_TYPES = ("iri", "string", "integer", "number", "boolean", "date")
RESERVED_PARAMS = ("limit", "offset", "format")   # the API's own query parameters
DEFAULT_MAX_LENGTH, LONGEST_MAX_LENGTH = 200, 2000
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
_VAR = re.compile(r"^[a-z][a-z0-9_]*\Z")

class QueryFileError(MgRdfError):
    """A query file the loader cannot use; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = _shown(Path(path)), line
        super().__init__(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")


def _shown(path: Path) -> str:
    """The path as the person running the command would type it (relative when it can be)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class UnknownQuery(MgRdfError):
    """No named query has that name."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str                          # one of PARAM_TYPES
    description: str
    required: bool = False
    default: str | None = None         # as a client would write it; checked like a request value
    example: str | None = None
    entity_types: tuple[str, ...] = ()  # for "entity": schema type names allowed (empty: any)
    values: tuple[str, ...] = ()       # for "enum"
    minimum: int | None = None         # for "integer"
    maximum: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH   # for "string"


@dataclass(frozen=True)
class Column:
    name: str
    type: str                          # one of COLUMN_TYPES
    description: str
    nullable: bool = False


@dataclass(frozen=True)
class NamedQuery:
    name: str                          # the file's stem, e.g. campaigns-of-organisation
    title: str
    description: str
    text: str                          # the SPARQL (PREFIX lines and all), without the header
    params: tuple[Parameter, ...]
    columns: tuple[Column, ...]
    paginate: bool
    path: Path
    header_lines: int                  # lines the header takes, to map SPARQL lines to file lines
    values_at: int                     # offset in ``text`` just after the WHERE group's "{"

    def param(self, name: str) -> Parameter | None:
        return next((p for p in self.params if p.name == name), None)

    def example_arguments(self) -> dict[str, str]:
        """Arguments for a request that shows the query at work: the required parameters' examples."""
        return {p.name: p.example for p in self.params if p.required and p.example is not None}


# -- reading a file ----------------------------------------------------------------------------

def load_queries(directory: Path) -> list[NamedQuery]:
    """Every ``*.rq`` file of ``directory`` as a NamedQuery, by name; QueryFileError on a bad file.

    Files are re-read only when one of them changes (checked by size and mtime).
    """
    files = sorted(Path(directory).glob("*.rq"))
    key = (str(directory), tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    cached = _cache.get(str(directory))
    if cached is None or cached[0] != key:
        cached = _cache[str(directory)] = (key, [parse_query_file(f) for f in files])
    return list(cached[1])


_cache: dict[str, tuple[tuple, list[NamedQuery]]] = {}   # directory -> (file stamps, queries)


def find_query(directory: Path, name: str) -> NamedQuery:
    for q in load_queries(directory):
        if q.name == name:
            return q
    raise UnknownQuery(f"no named query {name!r}")


def parse_query_file(path: Path) -> NamedQuery:
    return parse_query(path.read_text(encoding="utf-8"), path)


def parse_query(source: str, path: Path) -> NamedQuery:
    """Read one query file's text; ``path`` names it in errors (its stem is the query's name)."""
    name = path.stem
    if not _NAME.match(name):
        raise QueryFileError(path, None, "a query's file name must be lower-case words joined by '-'")
    lines = source.splitlines(keepends=True)
    header: list[str] = []
    for line in lines:
        if not (line.startswith("#+ ") or line.rstrip("\r\n") == "#+"):
            break
        header.append(line[3:] if line.startswith("#+ ") else "\n")
    if not header:
        raise QueryFileError(path, 1, "no header: a query file starts with '#+ title: …' lines")
    data, key_lines = _read_yaml("".join(header), path)
    at = _Locator(path, key_lines)
    text = "".join(lines[len(header):])
    q = _build(name, data, text, path, at, len(header))
    return replace(q, values_at=_check_sparql(q, at))


def _read_yaml(block: str, path: Path) -> tuple[dict, dict[tuple, int]]:
    try:
        node = yaml.compose(block, Loader=yaml.SafeLoader)
        data = yaml.safe_load(block)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        context = f"{e.context} (line {e.context_mark.line + 1}): " if e.context and e.context_mark else ""
        raise QueryFileError(path, line, f"header is not valid YAML: {context}{e.problem or ''}") from None
    if not isinstance(data, dict):
        raise QueryFileError(path, 1, "the header must be a mapping of keys (title:, description:, …)")
    key_lines: dict[tuple, int] = {}
    _walk(node, (), key_lines, path)
    return data, key_lines


def _walk(node: yaml.Node, where: tuple, out: dict[tuple, int], path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            here = where + (k.value,)
            if here in out:
                raise QueryFileError(path, k.start_mark.line + 1, f"{'.'.join(here)} is given twice")
            out[here] = k.start_mark.line + 1
            _walk(v, here, out, path)


@dataclass
class _Locator:
    path: Path
    lines: dict[tuple, int]

    def fail(self, where: tuple, message: str) -> QueryFileError:
        line = None
        for n in range(len(where), 0, -1):   # the nearest key that exists
            line = self.lines.get(where[:n])
            if line:
                break
        return QueryFileError(self.path, line or 1, f"{'.'.join(where)}: {message}" if where else message)


def _text(v: Any, where: tuple, at: _Locator, required: bool = True) -> str | None:
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise at.fail(where, "expected some text")
    return v.strip()


def _flag(v: Any, where: tuple, at: _Locator) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise at.fail(where, "expected true or false")
    return v


def _keys(d: Any, allowed: tuple[str, ...], where: tuple, at: _Locator) -> dict:
    if not isinstance(d, dict):
        raise at.fail(where, "expected a mapping")
    for k in d:
        if k not in allowed:
            hint = " — text with ', ' or ': ' inside {…} needs quotes" if " " in str(k) else ""
            raise at.fail(where + (str(k),), f"unknown key (allowed: {', '.join(allowed)}){hint}")
    return d


def _build(name: str, data: dict, text: str, path: Path, at: _Locator, header_lines: int) -> NamedQuery:
    _keys(data, ("title", "description", "params", "columns", "paginate"), (), at)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise at.fail(("params",), "expected a mapping of parameter names to their declarations")
    cols = data.get("columns")
    if not cols or not isinstance(cols, dict):
        raise at.fail(("columns",), "every query declares its result columns: a mapping of names")
    params = tuple(_parameter(str(k), v, at) for k, v in params.items())
    columns = tuple(_column(str(k), v, at) for k, v in cols.items())
    return NamedQuery(name, _text(data.get("title"), ("title",), at), _text(data.get("description"),
                      ("description",), at), text, params, columns, _flag(data.get("paginate"), ("paginate",), at),
                      path, header_lines, 0)


def _parameter(name: str, d: Any, at: _Locator) -> Parameter:
    where = ("params", name)
    d = _keys(d, ("type", "description", "required", "default", "example", "entity_type", "values",
                  "minimum", "maximum", "max_length"), where, at)
    if not _VAR.match(name) or name in RESERVED_PARAMS:
        raise at.fail(where, "a parameter name is a lower-case SPARQL variable name, not "
                      + "/".join(RESERVED_PARAMS))
    ptype = d.get("type")
    if ptype not in PARAM_TYPES:
        raise at.fail(where + ("type",), f"unknown type {ptype!r} (one of: {', '.join(PARAM_TYPES)})")
    for key, only in (("entity_type", "entity"), ("values", "enum"), ("minimum", "integer"),
                      ("maximum", "integer"), ("max_length", "string")):
        if key in d and ptype != only:
            raise at.fail(where + (key,), f"only a parameter of type {only} has {key}")
    entity_types = d.get("entity_type") or ()
    entity_types = (entity_types,) if isinstance(entity_types, str) else tuple(entity_types)
    for t in entity_types:
        if t not in schema.TYPES:
            raise at.fail(where + ("entity_type",), f"unknown entity type {t!r} (one of: {', '.join(schema.TYPES)})")
    values = d.get("values") or ()
    if ptype == "enum" and (not isinstance(values, list) or not values
                            or not all(isinstance(v, str) and v for v in values)):
        raise at.fail(where + ("values",), "an enum lists its values: values: [a, b]")
    bounds = {}
    for key in ("minimum", "maximum", "max_length"):
        if key in d and (not isinstance(d[key], int) or isinstance(d[key], bool)):
            raise at.fail(where + (key,), "expected a whole number")
        bounds[key] = d.get(key)
    max_length = bounds["max_length"] or DEFAULT_MAX_LENGTH
    if not 1 <= max_length <= LONGEST_MAX_LENGTH:
        raise at.fail(where + ("max_length",), f"must be between 1 and {LONGEST_MAX_LENGTH}")
    required = _flag(d.get("required"), where + ("required",), at)
    if required and "default" in d:
        raise at.fail(where + ("default",), "a required parameter has no default")
    p = Parameter(name, ptype, _text(d.get("description"), where + ("description",), at), required,
                  None if d.get("default") is None else _scalar(d["default"]),
                  None if d.get("example") is None else _scalar(d["example"]), entity_types, tuple(values),
                  bounds["minimum"], bounds["maximum"], max_length)
    if required and p.example is None:
        raise at.fail(where, "a required parameter needs an example (used by the docs and the tests)")
    for key, value in (("default", p.default), ("example", p.example)):
        if value is not None:
            try:
                check_value(p, value, DataIris())
            except ParameterError as e:
                raise at.fail(where + (key,), str(e).split(": ", 1)[1]) from None
    return p


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _column(name: str, d: Any, at: _Locator) -> Column:
    where = ("columns", name)
    d = _keys(d, ("type", "description", "nullable"), where, at)
    if d.get("type") not in COLUMN_TYPES:
        raise at.fail(where + ("type",), f"unknown column type {d.get('type')!r} (one of: {', '.join(COLUMN_TYPES)})")
    return Column(name, d["type"], _text(d.get("description"), where + ("description",), at),
                  _flag(d.get("nullable"), where + ("nullable",), at))


# -- checking the SPARQL against its header ----------------------------------------------------

# what may hold a brace or a keyword without being one: IRIs, comments, strings (long ones first)
_TOKEN = re.compile(r"""<[^<>"{}|^`\\\x00-\x20]*>"""
                    r"""|\#[^\n]*"""
                    r"""|"{3}.*?"{3}|'{3}.*?'{3}"""
                    r"""|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""", re.S)


def _code_only(text: str) -> str:
    """``text`` with comments, strings and IRIs blanked (same length), so keywords and braces
    found in it are the query's own."""
    return _TOKEN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _check_sparql(q: NamedQuery, at: _Locator) -> int:
    """Check the query against its header; where its WHERE group opens (for the VALUES block)."""
    code = _code_only(q.text)
    depth, values_at = 0, -1
    for i, ch in enumerate(code):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "{" and depth == 0:
            values_at = i + 1
            break
    if values_at < 0:
        raise QueryFileError(q.path, q.header_lines + 1, "no WHERE group '{' found")
    q = replace(q, values_at=values_at)
    has_order = re.search(r"\bORDER\s+BY\b", code, re.I)
    has_limit = re.search(r"\bLIMIT\s+\d+", code[code.rfind("}"):], re.I)
    if q.paginate and (not has_order or has_limit):
        raise at.fail(("paginate",), "a paginated query has an ORDER BY (pages must be stable) "
                      "and no LIMIT of its own (the API pages it)")
    if not q.paginate and not has_limit:
        raise at.fail(("paginate",), "a query that does not paginate must end with a LIMIT")
    for p in q.params:
        if not re.search(r"[?$]" + p.name + r"\b", code):
            raise at.fail(("params", p.name), f"the query never uses ?{p.name}")
    example = {p.name: check_value(p, p.example or p.default, DataIris())
               for p in q.params if (p.example or p.default) is not None}
    try:
        result = Store().query(prepared_text(q, example), prefixes=PREFIXES)
    except SyntaxError as e:
        raise QueryFileError(q.path, _sparql_line(str(e), q.header_lines), f"SPARQL syntax error: {e}") from None
    if not isinstance(result, QuerySolutions):
        raise QueryFileError(q.path, q.header_lines + 1, "a named query is a SELECT query")
    projected = [v.value for v in result.variables]
    declared = [c.name for c in q.columns]
    if projected != declared:
        raise at.fail(("columns",), f"columns {declared} differ from what the query selects {projected} "
                      "(same names, same order)")
    return values_at


def _sparql_line(message: str, offset: int) -> int:
    m = re.search(r"at (\d+):\d+", message)
    return int(m.group(1)) + offset if m else offset + 1

