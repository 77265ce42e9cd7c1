"""Reading one entity file: bad input gets a clear problem naming file, line and field."""

from __future__ import annotations

import time

import pytest

from mg_rdf.reader import read_entity
from mg_rdf.source import SourceFile, blob_hash

PATH = "entities/organizations/org-x.md"


def read(text: str | bytes, path: str = PATH):
    data = text.encode() if isinstance(text, str) else text
    return read_entity(SourceFile(path, data, blob_hash(data)))


GOOD = "---\nid: org-x\ntype: organization\nname: X\n---\n\n# X\n\nBody.\n"


def test_a_good_file_is_read_with_line_numbers():
    r = read(GOOD)
    assert r.problems == []
    assert r.record.data == {"id": "org-x", "type": "organization", "name": "X"}
    assert r.record.lines["name"] == 4
    assert r.record.body.strip().startswith("# X")
    assert r.record.body_line == 6


@pytest.mark.parametrize("text, rule, line, words", [
    ("---\nid: org-x\nname: a: b\n---\n", "yaml-syntax", 3, "mapping values"),
    ("---\nid: org-x\nname: [unclosed\n---\n", "yaml-syntax", None, "YAML syntax error"),
    ("no frontmatter here\n", "frontmatter", 1, "must start with a '---' line"),
    ("---\nid: org-x\nname: X\n", "frontmatter", 1, "not closed"),
    ("---\n- a\n- b\n---\n", "frontmatter", 2, "is a list"),
    ("---\njust a scalar\n---\n", "frontmatter", 2, "single value"),
    ("---\n---\nbody\n", "frontmatter", 2, "empty"),
])
def test_malformed_frontmatter_is_one_clear_problem(text, rule, line, words):
    r = read(text)
    assert r.record is None
    [p] = r.problems
    assert p.rule == rule and p.path == PATH and words in p.message
    if line is not None:
        assert p.line == line


def test_non_utf8_bytes_name_the_offset_and_line():
    r = read(b"---\nid: org-x\nname: caf\xe9\n---\n")
    [p] = r.problems
    assert p.rule == "encoding" and p.line == 3 and "0xe9" in p.message


def test_nul_bytes_are_refused():
    r = read("---\nid: org-x\nname: a\x00b\n---\n")
    [p] = r.problems
    assert p.rule == "encoding" and p.line == 3


def test_alias_bomb_is_refused_quickly():
    lines = ["---", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    lines += ["id: org-x", "---", ""]
    t0 = time.perf_counter()
    r = read("\n".join(lines))
    assert time.perf_counter() - t0 < 1.0
    assert r.record is None
    assert [p.rule for p in r.problems] == ["yaml-alias"]
    assert "aliases" in r.problems[0].message


def test_deep_nesting_is_refused_without_a_traceback():
    r = read("---\nid: org-x\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n")
    assert r.record is None
    assert r.problems and r.problems[0].rule in ("yaml-depth", "yaml-alias", "yaml-syntax")


def test_impossible_dates_stay_strings_for_the_mapper_to_report():
    r = read("---\nid: org-x\ncreated: 2021-02-30\n---\n")
    assert r.problems == []
    assert r.record.data["created"] == "2021-02-30"


def test_yaml_1_2_core_schema_scalars():
    r = read("---\na: yes\nb: true\nc: 2021\nd: 0o17\ne: 1:20\nf: ~\ng: 2021-06-07\n---\n")
    assert r.record.data == {"a": "yes", "b": True, "c": 2021, "d": 15, "e": "1:20", "f": None,
                             "g": "2021-06-07"}


def test_duplicate_keys_are_warned_with_both_lines():
    r = read("---\nid: org-x\nname: A\nname: B\n---\n")
    [p] = r.problems
    assert p.rule == "duplicate-key" and p.line == 4 and "line 3" in p.message
    assert r.record.data["name"] == "B"  # what YAML says


def test_unquoted_hash_cut_is_warned_where_it_happened():
    r = read("---\nid: org-x\nname: Access Now #KeepItOn coalition\nnote: fine # a comment\n---\n")
    cut = [p for p in r.problems if p.rule == "comment-cut"]
    assert sorted((p.field, p.line) for p in cut) == [("name", 3), ("note", 4)]
    assert r.record.data["name"] == "Access Now"  # YAML's reading is reproduced
    assert any("#KeepItOn" in p.value for p in cut)


def test_hash_at_the_start_of_a_value_makes_it_empty_and_is_warned():
    r = read("---\nid: org-x\nname: #BanBS\n---\n")
    [p] = [p for p in r.problems if p.rule == "comment-cut"]
    assert p.field == "name" and r.record.data["name"] is None


def test_quoted_hash_is_not_a_cut():
    r = read("---\nid: org-x\nname: 'Access Now #KeepItOn'\n---\n")
    assert r.problems == [] and r.record.data["name"] == "Access Now #KeepItOn"


def test_a_multi_megabyte_body_is_read():
    r = read(GOOD + ("word " * 1_000_000))
    assert r.problems == [] and len(r.record.body) > 4_000_000


# -- the direct construction of values (reader._construct) against PyYAML's own ---------------

def _typed(value):
    """A value with the type of every part spelled out: True, 1 and 1.0 differ here."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def read_by_pyyaml(data: bytes, path: str = PATH):
    """read_entity with PyYAML's own resolver and constructor (no shortcut of reader.py's)."""
    import yaml

    from mg_rdf import reader

    def unusual(loader, node):
        raise reader._Unusual

    saved = reader._construct, reader.Yaml12Loader.resolve
    reader._construct, reader.Yaml12Loader.resolve = unusual, yaml.resolver.BaseResolver.resolve
    try:
        return read_entity(SourceFile(path, data, blob_hash(data)))
    finally:
        reader._construct, reader.Yaml12Loader.resolve = saved


def assert_read_as_pyyaml_reads(data: bytes, path: str = PATH) -> None:
    ours, theirs = read_entity(SourceFile(path, data, blob_hash(data))), read_by_pyyaml(data, path)
    assert ours.problems == theirs.problems, path
    assert (ours.record is None) == (theirs.record is None), path
    if ours.record is not None:
        assert _typed(ours.record.data) == _typed(theirs.record.data), path
        assert ours.record.lines == theirs.record.lines, path


@pytest.mark.parametrize("frontmatter", [
    "id: org-x\nn: 12\nf: 1.5e3\ng: -.inf\nh: .NaN\nb: [true, False, TRUE]\nz: ~\ne:\nq: 'quoted'\nd: 2021-02-30",
    "id: org-x\nhex: 0x1F\noct: 0o17\nplus: +3\nneg: -0\nnot_int: 1_000\nyes_no: [yes, no, on, off]",
    "id: org-x\nexplicit: !!str 12\nbin: !!binary aGVsbG8=\nstamp: !!timestamp 2021-01-01\nfl: !!float 3",
    "id: org-x\n? [a, b]\n: complex key\n",
    "id: org-x\nbase: {a: 1}\nmerged: {<<: {a: 1}, b: 2}\nexplicit_merge: {!!merge <<: {a: 1}}",
    "id: org-x\nset: !!set {a, b}\nomap: !!omap [a: 1, b: 2]\nunknown: !custom x",
    "id: org-x\n1: int key\n2.5: float key\nnull: null key\ntrue: bool key\nsame: 1\nsame: 2",
    "id: org-x\nnested: [{a: [1, {b: c}]}, [], {}]\nempty_string: ''\nblock: |\n  two\n  lines\n",
])
def test_values_are_read_as_pyyaml_reads_them(frontmatter):
    assert_read_as_pyyaml_reads(f"---\n{frontmatter}\n---\n\n# X\n".encode())
