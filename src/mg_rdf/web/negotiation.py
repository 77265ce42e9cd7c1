"""Content negotiation in one place: media types, extensions and serialisers.

Every route asks this module which representation to send, by ``Accept`` (with
q-values, parsed by Werkzeug) or by an explicit ``format`` parameter or file
extension, so the same names mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyoxigraph import RdfFormat
from werkzeug.datastructures import MIMEAccept


@dataclass(frozen=True)
class Representation:
    key: str            # short name, also the file extension (ttl, jsonld, nt, rdf, nq, json, xml, csv, tsv, html, md)
    media_type: str     # what we send in Content-Type (charset added for text types)
    aliases: tuple[str, ...] = ()   # other media types a client may ask for

    @property
    def content_type(self) -> str:
        text = self.media_type.startswith("text/") or self.media_type in (
            "application/n-triples", "application/n-quads")
        return f"{self.media_type}; charset=utf-8" if text else self.media_type


HTML = Representation("html", "text/html", ("application/xhtml+xml",))
MARKDOWN = Representation("md", "text/markdown", ("text/x-markdown",))
TURTLE = Representation("ttl", "text/turtle", ("application/x-turtle",))
JSONLD = Representation("jsonld", "application/ld+json")
NTRIPLES = Representation("nt", "application/n-triples", ("text/plain",))
RDFXML = Representation("rdf", "application/rdf+xml", ("application/xml", "text/xml"))
NQUADS = Representation("nq", "application/n-quads")
RESULTS_JSON = Representation("json", "application/sparql-results+json", ("application/json",))
RESULTS_XML = Representation("xml", "application/sparql-results+xml", ("application/xml", "text/xml"))
RESULTS_CSV = Representation("csv", "text/csv")
RESULTS_TSV = Representation("tsv", "text/tab-separated-values")

RDF_DOCUMENTS = (TURTLE, JSONLD, NTRIPLES, RDFXML)           # entity data documents, CONSTRUCT answers
SPARQL_RESULTS = (RESULTS_JSON, RESULTS_XML, RESULTS_CSV, RESULTS_TSV)   # SELECT / ASK answers
OXIGRAPH_FORMAT = {"ttl": RdfFormat.TURTLE, "jsonld": RdfFormat.JSON_LD, "nt": RdfFormat.N_TRIPLES,
                   "rdf": RdfFormat.RDF_XML, "nq": RdfFormat.N_QUADS}


def by_key(key: str, offers: tuple[Representation, ...]) -> Representation | None:
    """The offer named by a ``format`` parameter or extension: a key or a media type."""
    k = key.strip().lower()
    for r in offers:
        if k == r.key or k == r.media_type or k in r.aliases:
            return r
    return None


MAX_ACCEPT_LENGTH = 2048  # a longer Accept header is answered 400, not parsed


def negotiate(accept: MIMEAccept, offers: tuple[Representation, ...],
              default: Representation | None = None) -> Representation | None:
    """The best offer for ``accept`` (q-values honoured; ties go to the earlier offer).

    An absent or ``*/*`` Accept gets ``default`` (or the first offer). None means
    nothing acceptable: the caller answers 406.
    """
    if not accept or not list(accept.values()):
        return default or offers[0]
    best, best_q = None, 0.0
    for r in offers:
        q = max(accept.quality(m) for m in (r.media_type, *r.aliases))
        exact = any(v.split(";")[0].strip().lower() in (r.media_type, *r.aliases) for v in accept.values())
        if q > best_q or (q == best_q and q > 0 and exact and best is not None and not _exact(accept, best)):
            best, best_q = r, q
    if best is None:
        return None
    # Only wildcards matched: prefer the default over the first offer.
    if default is not None and not _exact(accept, best) and accept.quality(default.media_type) >= best_q:
        return default
    return best


def _exact(accept: MIMEAccept, r: Representation) -> bool:
    names = (r.media_type, *r.aliases)
    return any(v.split(";")[0].strip().lower() in names for v in accept.values())
