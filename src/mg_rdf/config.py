"""Where things are and what the defaults are. Environment variables override.

``MG_RDF_STORE`` (store path), ``MG_RDF_BASE`` (data IRI base). The ontology,
shapes, queries and sample corpus ship beside the package in the source tree
(installed editable, as README.md's commands do).
"""

from __future__ import annotations

import os
from pathlib import Path

from .vocab import DEFAULT_BASE, check_base

PROJECT_ROOT = Path(os.environ.get("MG_RDF_HOME", Path(__file__).resolve().parents[2]))
ONTOLOGY_PATH = PROJECT_ROOT / "ontology" / "mg.ttl"
SHAPES_PATH = PROJECT_ROOT / "shapes" / "mg-shapes.ttl"
# Everything loaded into the ontology graph and the shapes graph of a build.
ONTOLOGY_FILES = (ONTOLOGY_PATH, PROJECT_ROOT / "ontology" / "mg-audit.ttl", PROJECT_ROOT / "ontology" / "mg-changes.ttl")
SHAPES_FILES = (SHAPES_PATH, PROJECT_ROOT / "shapes" / "audit-shapes.ttl")
QUERIES_DIR = PROJECT_ROOT / "queries"
SAMPLE_CORPUS = PROJECT_ROOT   # holds entities/, written for mg-rdf
SAMPLE_TITLE = "mg-rdf sample corpus (modelled on the Make AI Good Movement Graph)"
# `serve` answers /sparql from an in-memory copy of builds up to this many MB on disk (web/memory_copy.py)
MEMORY_COPY_MB = 200


def base_from_env() -> str:
    return check_base(os.environ.get("MG_RDF_BASE", DEFAULT_BASE))
