"""The parsed shapes are kept per process (a watching server validates many small builds) and
parsed again when the shapes file changes."""

from __future__ import annotations

from conftest import ROOT
from mg_rdf import validation
from mg_rdf.analysis import analyse
from mg_rdf.config import SHAPES_PATH
from mg_rdf.source import FolderSource
from mg_rdf.vocab import DataIris

IRIS = DataIris()
EXTRA = """
mg:TooLongNameShape a sh:NodeShape ;
    sh:targetClass mg:Organization ;
    sh:property [ sh:path mg:name ; sh:maxLength 3 ; sh:message "name longer than the test allows" ] .
"""


def test_shapes_are_parsed_again_when_the_file_changes(tmp_path, monkeypatch):
    shapes = tmp_path / "mg-shapes.ttl"
    shapes.write_bytes(SHAPES_PATH.read_bytes())
    monkeypatch.setattr(validation, "SHAPES_PATH", shapes)
    a = analyse(FolderSource(ROOT), IRIS, shacl=False)
    orgs = [e for e in a.index.by_id.values() if e.type == "organization"]
    assert orgs
    types = next(p for p in validation.PARTITIONS if "organization" in p)

    def messages() -> set[str]:
        return {p.message for p in validation.validate(orgs, a.index, IRIS, workers=1).problems}

    before = messages()
    kept = validation._shapes_graph(types)
    assert validation._shapes_graph(types) is kept, "the same file: the parsed shapes are kept"
    shapes.write_text(shapes.read_text() + EXTRA)
    after = messages()
    assert validation._shapes_graph(types) is not kept
    assert "name longer than the test allows" in after - before
    shapes.write_bytes(SHAPES_PATH.read_bytes())
    assert messages() == before
