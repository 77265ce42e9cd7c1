"""Links in Markdown prose, and which of them point at corpus entities.

The build scans every body and prose field for links; markdown-it-py takes ~3 s
for the 828 bodies of the corpus (measured: tests/test_links.py compares), so the
scan here is a small CommonMark-aware reader of inline and reference links that
skips code spans and fenced/indented code — and a test checks that it finds
exactly the links markdown-it-py finds on the whole real corpus. Pages are
rendered with markdown-it-py itself (``mg_rdf.web.markdown``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*\n.*?(?:^\1?\2[`~]*[ \t]*$|\Z)", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_INLINE = re.compile(
    r"\[((?:[^\[\]\\]++|\\.|\[(?:[^\[\]\\]++|\\.)*+\])*+)\]"      # [text] with one level of nesting
    r"\(\s*(<[^<>\n]*>|(?:[^\s()\\]++|\\.|\((?:[^\s()\\]++|\\.)*+\))*+)"       # (destination
    r"(?:\s+(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\((?:[^()\\]|\\.)*\)))?\s*\)",  # "title")
    re.S)
_REF_DEF = re.compile(r"^ {0,3}\[((?:[^\[\]\\]|\\.)+)\]:\s*(<[^<>\n]*>|\S+)", re.M)
_REF_USE = re.compile(r"(?<![\\\]])(!?)\[((?:[^\[\]\\]|\\.)+)\](?:\[((?:[^\[\]\\]|\\.)*)\])?(?![(:\[])")

ENTITY_PATH = re.compile(r"^entities/([a-z0-9-]+)/([^/]+)\.md$")


@dataclass(frozen=True)
class Link:
    href: str
    text: str
    offset: int   # character offset in the scanned text


@dataclass(frozen=True)
class EntityLink:
    entity_id: str
    directory: str     # the folder the link goes through (may be the wrong one)
    href: str
    offset: int


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def _normalise_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def links(markdown: str) -> list[Link]:
    """Every link (not image) in ``markdown``, in document order."""
    text = markdown
    if "```" in text or "~~~" in text:
        text = _FENCE.sub(_blank, text)
    if "`" in text:
        text = _CODE_SPAN.sub(_blank, text)
    found = _inline_links(text, 0)
    defs = {_normalise_label(m.group(1)): m.group(2).strip("<>") for m in _REF_DEF.finditer(text)} \
        if "]:" in text else {}
    if defs:
        masked = _REF_DEF.sub(_blank, _INLINE.sub(_blank, text))
        for m in _REF_USE.finditer(masked):
            if m.group(1):
                continue
            label = m.group(3) or m.group(2)
            href = defs.get(_normalise_label(label))
            if href is not None:
                found.append(Link(_unescape(href), m.group(2), m.start()))
        found.sort(key=lambda link: link.offset)
    return found


def _inline_links(text: str, base: int) -> list[Link]:
    found: list[Link] = []
    for m in _INLINE.finditer(text):
        start = m.start()
        if start and text[start - 1] in "!\\":  # an image, or an escaped bracket
            continue
        if "](" in m.group(1):  # links cannot contain links: the inner one is the link
            found.extend(_inline_links(m.group(1), base + m.start(1)))
            continue
        dest = m.group(2)
        if dest.startswith("<") and dest.endswith(">"):
            dest = dest[1:-1]
        found.append(Link(_unescape(dest), m.group(1), base + start))
    return found


def _unescape(dest: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", dest)


@lru_cache(maxsize=65536)
def resolve(href: str, from_path: str) -> str | None:
    """The corpus-relative path a relative link from ``from_path`` points at, or None."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(from_path), unquote(parts.path)))
    return None if target.startswith("../") or target == ".." else target


def entity_links(markdown: str, from_path: str) -> list[EntityLink]:
    """The links in ``markdown`` that point at an entity file (by path shape)."""
    out = []
    for link in links(markdown):
        target = resolve(link.href, from_path)
        if target and (m := ENTITY_PATH.match(target)):
            out.append(EntityLink(m.group(2), m.group(1), link.href, link.offset))
    return out


def line_of(text: str, offset: int, first_line: int = 1) -> int:
    return first_line + text.count("\n", 0, offset)
