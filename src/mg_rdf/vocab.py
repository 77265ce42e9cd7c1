"""IRIs: the fixed ontology namespace, the well-known vocabularies, and the
BASE-relative IRIs of the data (entities, tags, graphs).

The ontology namespace does not move with a deployment's BASE: like schema.org,
the vocabulary is one thing wherever the data is published. Data IRIs are
``{BASE}id/{entity-id}``, ``{BASE}tag/{slug}`` and ``{BASE}graph/{entity-id}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

DEFAULT_BASE = "https://w3id.org/movement-graph/"
ONTOLOGY_IRI = "https://w3id.org/movement-graph/ontology"
MG = ONTOLOGY_IRI + "#"
# Fields the ontology does not know land here, one property per field name,
# and every such triple is also reported as a warning.
MGX = "https://w3id.org/movement-graph/ontology/unmapped#"
SHAPES_IRI = "https://w3id.org/movement-graph/shapes"
MGSH = SHAPES_IRI + "#"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
DCT = "http://purl.org/dc/terms/"
PROV = "http://www.w3.org/ns/prov#"
VOID = "http://rdfs.org/ns/void#"
DCAT = "http://www.w3.org/ns/dcat#"
SCHEMA = "https://schema.org/"
FOAF = "http://xmlns.com/foaf/0.1/"
ORG = "http://www.w3.org/ns/org#"
SH = "http://www.w3.org/ns/shacl#"
WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"

PREFIXES: dict[str, str] = {
    "mg": MG,
    "mgx": MGX,
    "rdf": RDF,
    "rdfs": RDFS,
    "xsd": XSD,
    "owl": OWL,
    "skos": SKOS,
    "dcterms": DCT,
    "prov": PROV,
    "void": VOID,
    "dcat": DCAT,
    "schema": SCHEMA,
    "foaf": FOAF,
    "org": ORG,
    "sh": SH,
    "wd": WD,
    "wdt": WDT,
}

_BASE_RE = re.compile(r"^https?://[^\s/]+(/[^\s#?]*)?/$")


def check_base(base: str) -> str:
    """Return ``base`` if it is an absolute http(s) IRI ending in ``/``, else raise ValueError."""
    if not _BASE_RE.match(base):
        raise ValueError(f"BASE must be an absolute http(s) IRI ending in '/', got {base!r}")
    return base


@lru_cache(maxsize=65536)
def slug(text: str) -> str:
    """A tag's IRI segment: lower case, runs of anything but letters/digits/.-_ become '-'."""
    s = re.sub(r"[^\w.\-]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-")
    return s or "_"  # letters, digits (any script), '.', '-', '_': all allowed in an IRI as they are


_PLAIN_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


def _segment(value: str) -> str:
    """``value`` as one IRI path segment: letters and digits of any script stay as they
    are (IRIs allow them); anything else outside ``-._~`` is percent-encoded."""
    if _PLAIN_SEGMENT.match(value):
        return value
    return "".join(c if c.isalnum() or c in "-._~" else quote(c, safe="") for c in value)


@dataclass(frozen=True)
class DataIris:
    """Builds the IRIs of the data for one BASE."""

    base: str = DEFAULT_BASE

    def __post_init__(self) -> None:
        check_base(self.base)

    def entity(self, entity_id: str) -> str:
        return f"{self.base}id/{_segment(entity_id)}"

    def part(self, entity_id: str, fragment: str) -> str:
        """A thing described inside an entity's file: a source, an affiliation, an effect."""
        return f"{self.entity(entity_id)}#{fragment}"

    def graph(self, entity_id: str) -> str:
        return f"{self.base}graph/{_segment(entity_id)}"

    def tag(self, label: str) -> str:
        return f"{self.base}tag/{slug(label)}"

    @property
    def tag_scheme(self) -> str:
        return f"{self.base}tag/"

    @property
    def dataset(self) -> str:
        return f"{self.base}dataset"

    @property
    def dataset_graph(self) -> str:
        return f"{self.base}graph/dataset"

    @property
    def vocabulary_graph(self) -> str:
        """Graph holding the tag scheme and the ontology/shapes copies loaded for queries."""
        return f"{self.base}graph/vocabulary"

    def entity_id_of(self, iri: str) -> str | None:
        prefix = f"{self.base}id/"
        if iri.startswith(prefix) and "#" not in iri:
            return iri[len(prefix):]
        return None
