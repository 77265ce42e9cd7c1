"""Writing query answers with a cap on their size.

SELECT solutions are written by small serialisers that follow the W3C result
formats — SPARQL 1.1 Query Results JSON, XML, CSV and TSV — reading solutions
lazily and stopping after ``cap`` rows, so a capped answer never makes the
store produce the rest. CONSTRUCT/DESCRIBE answers are collected up to ``cap``
triples and serialised by pyoxigraph. Every writer reports whether it stopped
early (``Written.truncated``); a truncated answer names ``link`` (a page that
explains the cap) in SPARQL JSON/XML ``head.link``, and in a comment in Turtle
and N-Triples.

ASK answers in CSV/TSV, which the W3C formats do not define, are one line:
``true`` or ``false``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from json.encoder import encode_basestring as _quote  # C-accelerated; keeps non-ASCII as is
from typing import Any

from pyoxigraph import BlankNode, Literal, NamedNode, RdfFormat, Triple, serialize

from ..vocab import PREFIXES, XSD

XSD_STRING = XSD + "string"
RDF_LANG_STRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
RDF_DIR_LANG_STRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#dirLangString"
SOLUTION_FORMATS = ("json", "xml", "csv", "tsv")
GRAPH_FORMATS = {"ttl": RdfFormat.TURTLE, "nt": RdfFormat.N_TRIPLES, "jsonld": RdfFormat.JSON_LD,
                 "rdf": RdfFormat.RDF_XML}


@dataclass
class Written:
    body: bytes
    count: int          # rows or triples written
    truncated: bool     # the answer had more than ``cap`` rows/triples


def write_solutions(variables: list[str], rows: Iterable, fmt: str, cap: int, link: str | None = None) -> Written:
    """SELECT solutions (pyoxigraph ``QuerySolution``s, or sequences of terms) in ``fmt``."""
    it = iter(rows)
    kept = islice(it, cap)
    if fmt == "json":
        body, count = _json_rows(variables, kept)
    elif fmt == "xml":
        body, count = _xml_rows(variables, kept)
    elif fmt == "csv":
        body, count = _csv_rows(variables, kept)
    elif fmt == "tsv":
        body, count = _tsv_rows(variables, kept)
    else:
        raise ValueError(f"unknown results format {fmt!r}")
    truncated = count == cap and next(it, None) is not None
    links = [link] if truncated and link else []
    if fmt == "json":
        head = json.dumps({"vars": variables, **({"link": links} if links else {})}, ensure_ascii=False,
                          separators=(",", ":"))
        out = f'{{"head":{head},"results":{{"bindings":[{body}]}}}}'
    elif fmt == "xml":
        head = "".join(f"<variable name={quoteattr(v)}/>" for v in variables)
        head += "".join(f"<link href={quoteattr(h)}/>" for h in links)
        out = f'{_XML_START}<head>{head}</head>\n<results>\n{body}</results>\n</sparql>\n'
    else:
        out = body
    return Written(out.encode("utf-8"), count, truncated)


def write_boolean(value: bool, fmt: str) -> bytes:
    """An ASK answer in ``fmt``."""
    word = "true" if value else "false"
    if fmt == "json":
        return f'{{"head":{{}},"boolean":{word}}}'.encode()
    if fmt == "xml":
        return f"{_XML_START}<head/>\n<boolean>{word}</boolean>\n</sparql>\n".encode()
    if fmt == "csv":
        return f"{word}\r\n".encode()
    if fmt == "tsv":
        return f"{word}\n".encode()
    raise ValueError(f"unknown results format {fmt!r}")


def write_graph(triples: Iterable[Triple], fmt: str, cap: int, link: str | None = None) -> Written:
    """CONSTRUCT/DESCRIBE triples in ``fmt`` (ttl, nt, jsonld, rdf), at most ``cap`` of them."""
    if fmt == "nt" and hasattr(triples, "serialize"):
        body, count, truncated = _ntriples_capped(triples, cap)
    else:
        it = iter(triples)
        kept = list(islice(it, cap))
        count = len(kept)
        truncated = count == cap and next(it, None) is not None
        rdf_format = GRAPH_FORMATS[fmt]
        # Prefixes shorten Turtle; in RDF/XML they would only work for IRIs that end in an XML name.
        prefixes = PREFIXES if rdf_format == RdfFormat.TURTLE else None
        body = serialize(kept, format=rdf_format, prefixes=prefixes) or b""
    if truncated and fmt in ("ttl", "nt"):
        note = f"# Truncated: only the first {cap} triples are included"
        body = (note + (f"; see {link}" if link else "") + "\n").encode() + body
    return Written(body, count, truncated)


class _Enough(Exception):
    """Raised by ``_LinesUpTo`` to stop a serialisation that has written more than it needs."""


class _LinesUpTo:
    """A file for pyoxigraph's writers that keeps what they write and stops them (``_Enough``)
    once it holds more than ``cap`` lines."""

    __slots__ = ("cap", "parts", "lines")

    def __init__(self, cap: int):
        self.cap, self.parts, self.lines = cap, [], 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.lines += data.count(b"\n")
        if self.lines > self.cap:
            raise _Enough()
        return len(data)

    def flush(self) -> None:
        pass


def _ntriples_capped(result: Any, cap: int) -> tuple[bytes, int, bool]:
    """A CONSTRUCT/DESCRIBE result written as N-Triples by pyoxigraph itself (``QueryTriples.
    serialize``: no Python object per triple; ~15 % of a 100-triple describe from memory), and
    the same bytes as ``serialize`` of its first ``cap`` triples: a triple is one line."""
    out = _LinesUpTo(cap)
    try:
        result.serialize(out, format=RdfFormat.N_TRIPLES)
    except _Enough:
        pass
    body = b"".join(out.parts)
    if out.lines <= cap:
        return body, out.lines, False
    end = -1
    for _ in range(cap):
        end = body.index(b"\n", end + 1)
    return body[:end + 1], cap, True


# --- SPARQL 1.1 Query Results JSON (https://www.w3.org/TR/sparql11-results-json/) ---

def _json_term(term: object) -> str:
    """One RDF term as a SPARQL JSON object, as text (built directly: this runs for every cell)."""
    if isinstance(term, NamedNode):
        return '{"type":"uri","value":' + _quote(term.value) + "}"
    if isinstance(term, Literal):
        language = term.language
        if language:
            extra = ',"xml:lang":' + _quote(language)
            if getattr(term, "direction", None) is not None:
                extra += ',"its:dir":' + _quote(term.direction.value)
        else:
            datatype = term.datatype.value
            extra = "" if datatype == XSD_STRING else ',"datatype":' + _quote(datatype)
        return '{"type":"literal","value":' + _quote(term.value) + extra + "}"
    if isinstance(term, BlankNode):
        return '{"type":"bnode","value":' + _quote(term.value) + "}"
    if isinstance(term, Triple):   # RDF 1.2 triple terms
        return ('{"type":"triple","value":{"subject":' + _json_term(term.subject) + ',"predicate":'
                + _json_term(term.predicate) + ',"object":' + _json_term(term.object) + "}}")
    raise TypeError(f"not an RDF term: {term!r}")


def _json_rows(variables: list[str], rows: Iterator) -> tuple[str, int]:
    names = [_quote(v) + ":" for v in variables]
    seen: dict[object, str] = {}   # the same IRI often fills many cells
    parts = []
    for row in rows:
        cells = []
        for name, term in zip(names, row):
            if term is not None:
                text = seen.get(term)
                if text is None:
                    text = seen[term] = _json_term(term)
                cells.append(name + text)
        parts.append("{" + ",".join(cells) + "}")
    return ",\n".join(parts), len(parts)


# --- SPARQL Query Results XML Format (https://www.w3.org/TR/rdf-sparql-XMLres/) ---

_XML_START = '<?xml version="1.0" encoding="UTF-8"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">\n'
# XML 1.0 cannot carry most C0 control characters, even escaped; they become U+FFFD.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _XML_FORBIDDEN.sub("\ufffd", value)


def quoteattr(value: str) -> str:
    """``value`` as a double-quoted XML attribute (white space kept as character references)."""
    value = _xml_text(value).replace('"', "&quot;")
    return '"' + value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


def _xml_term(term: object) -> str:
    if isinstance(term, NamedNode):
        return f"<uri>{_xml_text(term.value)}</uri>"
    if isinstance(term, Literal):
        if term.language:
            attrs = f" xml:lang={quoteattr(term.language)}"
            if getattr(term, "direction", None) is not None:
                attrs += f' its:dir="{term.direction.value}" xmlns:its="http://www.w3.org/2005/11/its"'
        elif term.datatype.value != XSD_STRING:
            attrs = f" datatype={quoteattr(term.datatype.value)}"
        else:
            attrs = ""
        return f"<literal{attrs}>{_xml_text(term.value)}</literal>"
    if isinstance(term, BlankNode):
        return f"<bnode>{_xml_text(term.value)}</bnode>"
    if isinstance(term, Triple):
        return (f"<triple><subject>{_xml_term(term.subject)}</subject><predicate>{_xml_term(term.predicate)}"
                f"</predicate><object>{_xml_term(term.object)}</object></triple>")
    return ""


def _xml_rows(variables: list[str], rows: Iterator) -> tuple[str, int]:
    parts = []
    names = [f"<binding name={quoteattr(v)}>" for v in variables]
    seen: dict[object, str] = {}
    for row in rows:
        cells = []
        for name, term in zip(names, row):
            if term is not None:
                text = seen.get(term)
                if text is None:
                    text = seen[term] = _xml_term(term)
                cells.append(name + text + "</binding>")
        parts.append("<result>" + "".join(cells) + "</result>\n")
    return "".join(parts), len(parts)


# --- SPARQL 1.1 Query Results CSV and TSV (https://www.w3.org/TR/sparql11-results-csv-tsv/) ---

def _csv_value(term: object) -> str:
    if term is None:
        return ""
    if isinstance(term, BlankNode):
        return f"_:{term.value}"
    if isinstance(term, (NamedNode, Literal)):
        return term.value
    return str(term)   # a triple term, in its N-Triples form


def _csv_rows(variables: list[str], rows: Iterator) -> tuple[str, int]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")   # RFC 4180: CRLF, quotes only where needed
    writer.writerow(variables)
    count = 0
    for row in rows:
        writer.writerow([_csv_value(t) for t in row])
        count += 1
    return buf.getvalue(), count


_ABBREVIATED = {
    XSD + "integer": re.compile(r"[+-]?[0-9]+"),
    XSD + "decimal": re.compile(r"[+-]?[0-9]*\.[0-9]+"),
    XSD + "double": re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)[eE][+-]?[0-9]+"),
    XSD + "boolean": re.compile(r"true|false"),
}


def _tsv_value(term: object) -> str:
    if term is None:
        return ""
    if isinstance(term, Literal):
        # Numbers and booleans may be written bare, as in Turtle, when the lexical form allows it.
        shape = _ABBREVIATED.get(term.datatype.value)
        if shape is not None and shape.fullmatch(term.value):
            return term.value
    return str(term)   # pyoxigraph writes N-Triples syntax: \t and \n in strings are escaped


def _tsv_rows(variables: list[str], rows: Iterator) -> tuple[str, int]:
    lines = ["\t".join("?" + v for v in variables)]
    for row in rows:
        lines.append("\t".join(_tsv_value(t) for t in row))
    return "\n".join(lines) + "\n", len(lines) - 1
