"""The neighbourhood picture: an entity and the entities it is linked with.

A deterministic radial layout computed here and drawn by the page template as
inline SVG, so the picture needs neither JavaScript nor the internet. The
entity sits in the middle, its neighbours on one ring around it: first its
frontmatter neighbours (both directions), then the entities linked only through
prose, drawn lighter. Neighbours are ordered by type, then name, so each type
forms one arc of one colour. Past ``MAX_NODES`` the rest are counted, not drawn
(the Connections section lists them all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import schema
from .entity_view import EntityRef

# Up to SPARSE neighbours: one ellipse, wider than tall, labels written sideways.
# More: one circle with labels along the radius, which never overlap while the
# arc between two nodes is taller than a line of text (LINE px).
SPARSE = 14
SPARSE_SIZE = (1000, 440)
SPARSE_RADII = (255.0, 160.0)
LINE = 15.0
MAX_NODES = 120
RADIUS = {"centre": 14.0, "direct": 8.0, "mention": 6.0}
LABEL_CHARS = {"sparse": 30, "dense": 24}
LABEL_ROOM = 150.0    # px a dense label may take beyond its node
_TYPE_ORDER = {name: i for i, name in enumerate(schema.TYPES)}


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    type: str
    x: float
    y: float
    r: float
    label: str          # the name, shortened to fit
    lx: float           # where the label is written
    ly: float
    anchor: str         # SVG text-anchor: start | middle | end
    mention: bool = False
    rotate: float = 0.0  # degrees about (lx, ly): dense pictures write labels along the radius


@dataclass(frozen=True)
class Picture:
    centre: Node
    nodes: tuple[Node, ...]
    width: int
    height: int
    left_out: int = 0   # neighbours not drawn (past MAX_NODES)

    @property
    def direct_shown(self) -> int:
        return sum(1 for n in self.nodes if not n.mention)

    @property
    def mentions_shown(self) -> int:
        return sum(1 for n in self.nodes if n.mention)

    @property
    def types(self) -> list[tuple[str, str]]:
        """(type name, label) of the entity types drawn, in schema order (for the legend)."""
        present = {self.centre.type, *(n.type for n in self.nodes)}
        return [(t.name, t.label) for t in schema.TYPES.values() if t.name in present]


def shorten(name: str, limit: int) -> str:
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def _order(ref: EntityRef) -> tuple[int, str, str]:
    return (_TYPE_ORDER.get(ref.type or "", 99), ref.name.casefold(), ref.id)


def layout(centre: EntityRef, direct: list[EntityRef], mentioned: list[EntityRef]) -> Picture:
    """Place ``centre`` and its neighbours; same input, same picture."""
    queue = [(r, False) for r in sorted(direct, key=_order) if r.exists and r.id != centre.id]
    queue += [(r, True) for r in sorted(mentioned, key=_order) if r.exists and r.id != centre.id]
    shown, left_out = queue[:MAX_NODES], max(0, len(queue) - MAX_NODES)
    dense = len(shown) > SPARSE
    if dense:
        radius = max(190.0, len(shown) * LINE / (2 * math.pi))
        width = height = int(2 * (radius + RADIUS["direct"] + LABEL_ROOM) + 20)
        rx = ry = radius
    else:
        (width, height), (rx, ry) = SPARSE_SIZE, SPARSE_RADII
    cx, cy = width / 2, height / 2
    middle = Node(centre.id, centre.name, centre.type or "", cx, cy, RADIUS["centre"],
                  shorten(centre.name, 60), cx, cy + RADIUS["centre"] + 16, "middle")
    nodes = []
    for i, (ref, mention) in enumerate(shown):
        angle = -math.pi / 2 + i * 2 * math.pi / len(shown)
        x, y = cx + rx * math.cos(angle), cy + ry * math.sin(angle)
        place = _along_radius if dense else _sideways
        nodes.append(place(ref, mention, x, y, angle))
    return Picture(middle, tuple(nodes), width, height, left_out)


def _sideways(ref: EntityRef, mention: bool, x: float, y: float, angle: float) -> Node:
    r = RADIUS["mention" if mention else "direct"]
    c, s = math.cos(angle), math.sin(angle)
    if c > 0.25:
        anchor, lx, ly = "start", x + r + 4, y + 4
    elif c < -0.25:
        anchor, lx, ly = "end", x - r - 4, y + 4
    else:
        anchor, lx, ly = "middle", x, (y - r - 6 if s < 0 else y + r + 14)
    return Node(ref.id, ref.name, ref.type or "", round(x, 1), round(y, 1), r,
                shorten(ref.name, LABEL_CHARS["sparse"]), round(lx, 1), round(ly, 1), anchor, mention)


def _along_radius(ref: EntityRef, mention: bool, x: float, y: float, angle: float) -> Node:
    r = RADIUS["mention" if mention else "direct"]
    c, s = math.cos(angle), math.sin(angle)
    lx, ly = x + (r + 4) * c, y + (r + 4) * s
    degrees = math.degrees(angle)
    # Text on the left half is turned the other way round so it never reads upside down.
    anchor, rotate = ("start", degrees) if c >= -1e-9 else ("end", degrees + 180)
    return Node(ref.id, ref.name, ref.type or "", round(x, 1), round(y, 1), r,
                shorten(ref.name, LABEL_CHARS["dense"]), round(lx, 1), round(ly, 1),
                anchor, mention, round(rotate % 360, 2))
