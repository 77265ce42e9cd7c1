"""The corpus's own integrity rules, which SHACL on one file cannot see.

spec.md asks that a file's name is its id, that an id's prefix matches its
folder, that references resolve to an entity of the right type, that symmetric
pairs are stated on both sides and that the non-canonical side of a pair stays
empty. These checks read the mapped entities of the whole corpus at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from . import schema
from .mapping import MappedEntity, Reference
from .problems import Problem, Severity


class CorpusIndex:
    """Which ids exist, of which type, in which file; first file wins a duplicate id."""

    def __init__(self, entities: Iterable[MappedEntity]):
        self.by_id: dict[str, MappedEntity] = {}
        self.duplicates: list[tuple[MappedEntity, MappedEntity]] = []
        for e in sorted(entities, key=lambda e: e.path):
            first = self.by_id.get(e.id)
            if first is None:
                self.by_id[e.id] = e
            else:
                self.duplicates.append((first, e))

    def type_of(self, entity_id: str) -> str | None:
        e = self.by_id.get(entity_id)
        return e.type if e else None

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self.by_id


def check(index: CorpusIndex) -> list[Problem]:
    """All cross-file problems of the corpus, in a stable order."""
    problems: list[Problem] = []
    for first, dup in index.duplicates:
        problems.append(Problem(dup.path, None, "id", f"duplicate id: {first.path} has the same id; "
                                "this file is not loaded", dup.id, Severity.VIOLATION, "duplicate-id"))
        problems.extend(_placement(dup))
    for e in index.by_id.values():
        problems.extend(_placement(e))
        for ref in e.references:
            problems.extend(_reference(ref, e, index))
        seen: set[str] = set()
        for ref in e.mentions:
            if ref.target_id not in index and ref.target_id not in seen:
                seen.add(ref.target_id)
                problems.append(Problem(e.path, ref.line, ref.field,
                                        "link to an entity that does not exist; not a mention",
                                        ref.target_id, Severity.WARNING, "dangling-link"))
    problems.extend(_pairs(index))
    return problems


def _placement(e: MappedEntity) -> list[Problem]:
    out = []
    parts = e.path.split("/")
    stem = parts[-1].removesuffix(".md")
    directory = parts[1] if len(parts) >= 3 else ""
    if stem != e.id:
        out.append(Problem(e.path, None, "id", f"file name does not match the id (expected {e.id}.md)",
                           e.id, Severity.VIOLATION, "filename-id"))
    by_prefix = schema.type_of_id(e.id)
    if by_prefix is None:
        prefixes = ", ".join(schema.BY_PREFIX)
        out.append(Problem(e.path, None, "id", f"id has no type prefix ({prefixes})", e.id,
                           Severity.VIOLATION, "id-prefix"))
    elif by_prefix.directory != directory:
        out.append(Problem(e.path, None, "id", f"id prefix {by_prefix.prefix!r} belongs in "
                           f"entities/{by_prefix.directory}/, not entities/{directory}/", e.id,
                           Severity.VIOLATION, "id-directory"))
    etype = schema.TYPES.get(e.type)
    if etype and by_prefix and etype is not by_prefix:
        out.append(Problem(e.path, None, "type", f"type is {e.type!r} but the id prefix says "
                           f"{by_prefix.name!r}", e.type, Severity.VIOLATION, "type-prefix"))
    return out


def _reference(ref: Reference, e: MappedEntity, index: CorpusIndex) -> list[Problem]:
    target_type = index.type_of(ref.target_id)
    if ref.target_id == e.id:
        return [Problem(e.path, ref.line, ref.field, "entity refers to itself", ref.target_id,
                        Severity.WARNING, "self-reference")]
    if target_type is None:
        return [Problem(e.path, ref.line, ref.field, "dangling reference: no entity has this id",
                        ref.target_id, Severity.VIOLATION, "dangling-reference")]
    if ref.targets and target_type not in ref.targets:
        expected = " or ".join(ref.targets)
        return [Problem(e.path, ref.line, ref.field, f"refers to a {target_type}, but this field takes "
                        f"{expected} ids", ref.target_id, Severity.VIOLATION, "reference-type")]
    return []


def _pairs(index: CorpusIndex) -> list[Problem]:
    """Symmetric pairs present on both sides; non-canonical sides empty."""
    # (type, field) -> {source id: [(target id, line, field path)]}
    stated: dict[tuple[str, str], dict[str, list[Reference]]] = defaultdict(lambda: defaultdict(list))
    for e in index.by_id.values():
        for ref in e.references:
            base = ref.field.split("[", 1)[0]
            stated[(e.type, base)][e.id].append(ref)
    out: list[Problem] = []
    for rule in schema.PAIR_RULES:
        a_side, b_side = stated.get(rule.a, {}), stated.get(rule.b, {})
        if rule.rule == "a":
            for src, refs in sorted(b_side.items()):
                for ref in refs:
                    e = index.by_id[src]
                    canonical = src in {r.target_id for r in a_side.get(ref.target_id, [])}
                    where = f"{rule.a[0]}.{rule.a[1]}"
                    msg = (f"non-canonical side of {rule.name}: the pair belongs in {where} of the target"
                           + ("" if canonical else ", which does not list it"))
                    out.append(Problem(e.path, ref.line, ref.field, msg, ref.target_id,
                                       Severity.WARNING if canonical else Severity.VIOLATION,
                                       "canonical-direction"))
            continue
        directions = [(a_side, b_side, rule.b)]
        if rule.a != rule.b:  # a symmetric field: one pass over it checks both directions
            directions.append((b_side, a_side, rule.a))
        for side, other_side, other in directions:
            for src, refs in sorted(side.items()):
                for ref in refs:
                    target = index.by_id.get(ref.target_id)
                    if target is None or target.type != other[0]:
                        continue  # dangling or wrong type: reported by the reference check
                    back = {r.target_id for r in other_side.get(ref.target_id, [])}
                    if src not in back:
                        out.append(Problem(
                            target.path, None, other[1],
                            f"{rule.name} must be stated on both sides: {src} lists {ref.target_id} "
                            f"in {ref.field.split('[', 1)[0]}, but this file does not list {src}",
                            src, Severity.VIOLATION, "symmetric-pair"))
    return out
