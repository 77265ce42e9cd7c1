"""Reading one entity file: bytes -> ``EntityRecord`` (frontmatter, body, line
numbers) plus the problems found on the way. Never raises on bad input.

python-frontmatter splits the file; the frontmatter is parsed by PyYAML's C
parser with YAML 1.2 core-schema scalars (``2021-06-07`` is a string, as YAML
1.2 says, so an impossible date is reported by the mapper with its field and
line instead of crashing PyYAML's timestamp constructor). Aliases are refused
(no "billion laughs"), duplicate keys and values cut by an unquoted `` #`` are
reported with their line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import frontmatter
import yaml

from .problems import Problem, Severity
from .source import SourceFile

_CORE_RESOLVERS = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
     list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789")),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
]


class Yaml12Loader(yaml.CSafeLoader):
    """PyYAML's C loader with the YAML 1.2 core schema's implicit scalar types."""

    yaml_implicit_resolvers: dict = {}


for _tag, _re, _first in _CORE_RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, _re, _first)


def _construct_int(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> int:
    value = node.value
    if value.startswith("0o"):
        return int(value[2:], 8)
    return int(value, 0) if value.startswith("0x") else int(value, 10)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_FIRSTS = frozenset(Yaml12Loader.yaml_implicit_resolvers)   # first characters some implicit type claims


def _resolve(self: Yaml12Loader, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
    """PyYAML's resolver, answering at once for a scalar no implicit type can match (most of them:
    the C parser asks for every scalar)."""
    if kind is yaml.ScalarNode and (not implicit[0] or (value and value[0] not in _FIRSTS)):
        return _STR
    return yaml.resolver.BaseResolver.resolve(self, kind, value, implicit)


Yaml12Loader.resolve = _resolve   # type: ignore[method-assign]
_SCALARS = {"tag:yaml.org,2002:int": _construct_int,
            "tag:yaml.org,2002:null": yaml.constructor.SafeConstructor.construct_yaml_null,
            "tag:yaml.org,2002:bool": yaml.constructor.SafeConstructor.construct_yaml_bool,
            "tag:yaml.org,2002:float": yaml.constructor.SafeConstructor.construct_yaml_float}


class _Unusual(Exception):
    """A node the direct construction leaves to PyYAML (an explicit tag, a complex key …)."""


def _construct(loader: Yaml12Loader, node: yaml.Node) -> Any:
    """What ``loader.construct_document(node)`` gives, for a tree of plain mappings with scalar
    keys, sequences and the core schema's scalars, without PyYAML's generic machinery (~3x
    faster); raises ``_Unusual`` for anything else. Aliases were refused before (``_inspect``),
    so no node is shared, and the depth is bounded there too."""
    kind, tag = node.__class__, node.tag
    if kind is yaml.ScalarNode:
        if tag == _STR:
            return node.value
        scalar = _SCALARS.get(tag)
        if scalar is not None:
            return scalar(loader, node)
    elif kind is yaml.SequenceNode and tag == _SEQ:
        return [_construct(loader, item) for item in node.value]
    elif kind is yaml.MappingNode and tag == _MAP:
        mapping = {}
        for key, value in node.value:
            if key.__class__ is not yaml.ScalarNode:
                raise _Unusual
            mapping[_construct(loader, key)] = _construct(loader, value)   # a repeated key: the last wins, as in PyYAML
        return mapping
    raise _Unusual


_HANDLER = frontmatter.default_handlers.YAMLHandler()
MAX_NODES = 100_000     # frontmatter nodes per file; the corpus's largest has a few hundred
MAX_DEPTH = 40


@dataclass
class EntityRecord:
    """One entity file as read: its frontmatter values and where each key sits."""

    path: str
    blob: str
    text: str
    data: dict[str, Any]
    body: str
    lines: dict[str, int] = field(default_factory=dict)   # field path -> 1-based file line
    body_line: int = 1

    @property
    def id(self) -> str | None:
        v = self.data.get("id")
        return v if isinstance(v, str) else None

    @property
    def type(self) -> str | None:
        v = self.data.get("type")
        return v if isinstance(v, str) else None

    def line(self, field_path: str) -> int | None:
        return line_for(self.lines, field_path)


def line_for(lines: dict[str, int], field_path: str) -> int | None:
    """Line of ``field_path`` (e.g. ``sources[2].url``) or of its nearest parent."""
    while field_path:
        if field_path in lines:
            return lines[field_path]
        cut = max(field_path.rfind("."), field_path.rfind("["))
        field_path = field_path[:cut] if cut > 0 else ""
    return None


@dataclass
class ReadResult:
    record: EntityRecord | None
    problems: list[Problem]


def read_entity(source: SourceFile) -> ReadResult:
    """Parse one entity file. ``record`` is None when nothing usable could be read."""
    path = source.path
    problems: list[Problem] = []

    def fail(message: str, line: int | None = None, value: str | None = None, rule: str = "unreadable") -> ReadResult:
        problems.append(Problem(path, line, None, message, value, Severity.VIOLATION, rule))
        return ReadResult(None, problems)

    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = source.data[: e.start].count(b"\n") + 1
        return fail(f"not UTF-8: byte 0x{source.data[e.start]:02x} at offset {e.start} cannot be decoded",
                    line, rule="encoding")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        return fail("contains NUL bytes", text[: text.index("\x00")].count("\n") + 1, rule="encoding")
    if not text.startswith("---"):
        return fail("no YAML frontmatter: the file must start with a '---' line", 1, rule="frontmatter")
    try:
        fm, body = _HANDLER.split(text)
    except ValueError:
        return fail("frontmatter is not closed by a '---' line", 1, rule="frontmatter")
    body_line = text[: len(text) - len(body)].count("\n") + 1 if body else text.count("\n") + 1

    loader = Yaml12Loader(fm)
    try:
        node = loader.get_single_node()
        if node is None:
            return fail("frontmatter is empty", 2, rule="frontmatter")
        lines: dict[str, int] = {}
        _inspect(node, fm, path, lines, problems)
        if any(p.rule == "yaml-alias" for p in problems):
            return ReadResult(None, problems)
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            return fail(f"frontmatter is {kind}, not a mapping of fields", node.start_mark.line + 1,
                        rule="frontmatter")
        try:
            data = _construct(loader, node)
        except _Unusual:
            data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        detail = " ".join(x for x in (e.context, e.problem) if x)
        return fail(f"YAML syntax error: {detail}", line, rule="yaml-syntax")
    except yaml.YAMLError as e:
        return fail(f"YAML error: {e}", rule="yaml-syntax")
    except RecursionError:
        return fail("frontmatter is nested too deeply to read", rule="yaml-depth")
    except (ValueError, TypeError) as e:  # a constructor refusing a value PyYAML recognised
        return fail(f"YAML value cannot be read: {e}", rule="yaml-value")
    finally:
        loader.dispose()
    record = EntityRecord(path, source.blob, text, data, body, lines, body_line)
    return ReadResult(record, problems)


def _inspect(root: yaml.Node, fm: str, path: str, lines: dict[str, int], problems: list[Problem]) -> None:
    """Walk the composed tree once: line numbers, aliases, duplicate keys, ` #` cuts, size."""
    fm_lines = fm.split("\n")
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 0)]
    count = 0
    while stack:
        node, where, depth = stack.pop()
        count += 1
        if id(node) in seen:
            problems.append(Problem(path, node.start_mark.line + 1, where or None,
                                    "YAML aliases (*name) are not allowed in frontmatter", None,
                                    Severity.VIOLATION, "yaml-alias"))
            return
        seen.add(id(node))
        if count > MAX_NODES or depth > MAX_DEPTH:
            problems.append(Problem(path, node.start_mark.line + 1, where or None,
                                    "frontmatter is too large or too deeply nested", None,
                                    Severity.VIOLATION, "yaml-alias"))
            return
        if where:
            lines.setdefault(where, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else "?"
                child = f"{where}.{key}" if where else key
                if key in keys:
                    problems.append(Problem(path, k.start_mark.line + 1, child,
                                            f"duplicate key; YAML keeps the last value, the one on line "
                                            f"{keys[key]} is lost", None, Severity.WARNING, "duplicate-key"))
                keys[key] = k.start_mark.line + 1
                lines[child] = k.start_mark.line + 1
                stack.append((v, child, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, f"{where}[{i}]", depth + 1))
        elif isinstance(node, yaml.ScalarNode) and not node.style:
            rest = fm_lines[node.end_mark.line][node.end_mark.column:] if node.end_mark.line < len(fm_lines) else ""
            stripped = rest.lstrip()
            if stripped.startswith("#") and (rest[:1].isspace() or node.value == ""):
                problems.append(Problem(
                    path, node.end_mark.line + 1, where or None,
                    f"unquoted ' #' starts a YAML comment: the value was cut to {node.value!r}; "
                    "quote the whole value to keep the rest", stripped, Severity.WARNING, "comment-cut"))
