"""Rendering corpus Markdown (entity bodies and prose fields) to safe HTML.

markdown-it-py parses (CommonMark plus tables and strikethrough, raw HTML
*off*: an author's ``<b>`` shows as text, it is never markup). Links are then
rewritten on the token stream, before any HTML exists:

- a relative link to an entity file (``../organizations/org-x.md``) becomes a
  link to that entity's page when the entity exists, else plain text;
- any other relative link (``../../schema/spec.md``, ``#section``) is kept as
  text, so the page never invents a route the server does not have;
- an absolute http(s) link stays a link with ``rel="nofollow noopener"``;
- an image becomes a link to it (pages load nothing from elsewhere).

nh3 then sanitises the result with an allow-list, as a second line of defence:
no script, no event handler, no ``javascript:`` URL survives either step.
Nothing here knows Flask: the caller says how an entity id becomes a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..links import ENTITY_PATH, resolve

EntityHref = Callable[[str], "str | None"]   # entity id -> its page URL, None when there is no such entity

_MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
# Link destinations are kept as written: percent-encoding them (markdown-it's
# normalizeLink) took a quarter of the render time and changed no page of the
# corpus. Safety does not rest on it: markdown-it's validateLink still refuses
# javascript:/vbscript:/file:/data: links, the renderer escapes attributes, and
# nh3 allows only http, https, mailto and relative URLs.
_MD.normalizeLink = lambda url: url  # type: ignore[method-assign]

_TAGS = {"p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
         "em", "strong", "s", "del", "a", "span", "table", "thead", "tbody", "tr", "th", "td"}
_ATTRIBUTES = {"a": {"href", "rel", "class", "title"}, "span": {"class", "title"}, "ol": {"start"},
               "code": {"class"}}
_HTTP = re.compile(r"^https?://", re.I)
HEADING_SHIFT = 2   # the body's "# x" sits under the page's h1 and the section's h2


def render(markdown: str, from_path: str, entity_href: EntityHref, drop_title: str | None = None) -> str:
    """Safe HTML for ``markdown`` written in the corpus file ``from_path``.

    ``drop_title``: a leading H1 with exactly this text is left out (the page
    already shows the entity's name as its title).
    """
    tokens = _MD.parse(markdown)
    if drop_title is not None:
        tokens = _without_title(tokens, drop_title)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + HEADING_SHIFT)}"
        elif token.type == "inline" and token.children:
            token.children = _rewrite_links(token.children, from_path, entity_href)
    html = _MD.renderer.render(tokens, _MD.options, {})
    return sanitise(html)


def sanitise(html: str) -> str:
    """The allow-list every piece of rendered Markdown passes through."""
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel=None, strip_comments=True)


def _without_title(tokens: list[Token], title: str) -> list[Token]:
    if (len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1"
            and tokens[1].content.strip() == title.strip()):
        return tokens[3:]
    return tokens


def _rewrite_links(children: list[Token], from_path: str, entity_href: EntityHref) -> list[Token]:
    out: list[Token] = []
    closing: list[dict[str, str] | None] = []   # per open link: the attrs its close needs (None = keep "a")
    for tok in children:
        if tok.type == "link_open":
            kind, attrs = classify(str(tok.attrs.get("href", "")), from_path, entity_href)
            if kind == "text":
                tok.tag, tok.attrs = "span", attrs
                closing.append({"tag": "span"})
            else:
                tok.attrs = attrs
                closing.append(None)
            out.append(tok)
        elif tok.type == "link_close":
            change = closing.pop() if closing else None
            if change:
                tok.tag = change["tag"]
            out.append(tok)
        elif tok.type == "image":
            out.extend(_image_as_link(tok))
        else:
            out.append(tok)
    return out


def classify(href: str, from_path: str, entity_href: EntityHref) -> tuple[str, dict[str, str]]:
    """What a link in corpus prose becomes: ("entity" | "external" | "text", attributes)."""
    if _HTTP.match(href):
        parts = urlsplit(href)
        if parts.netloc:
            return "external", {"href": href, "rel": "nofollow noopener", "class": "external"}
        return "text", {"class": "unlinked"}
    target = resolve(href, from_path)
    if target and (m := ENTITY_PATH.match(target)):
        url = entity_href(m.group(2))
        if url:
            return "entity", {"href": url, "class": "entity"}
        return "text", {"class": "unlinked missing-entity", "title": f"no entity {m.group(2)} in this build"}
    if target:
        return "text", {"class": "unlinked repo-path", "title": target}
    return "text", {"class": "unlinked"}


def _image_as_link(tok: Token) -> list[Token]:
    alt = tok.content or str(tok.attrs.get("alt", "")) or "image"
    src = str(tok.attrs.get("src", ""))
    text = Token("text", "", 0, content=f"[image: {alt}]")
    if not (_HTTP.match(src) and urlsplit(src).netloc):
        return [text]
    open_ = Token("link_open", "a", 1, attrs={"href": src, "rel": "nofollow noopener", "class": "external"})
    return [open_, text, Token("link_close", "a", -1)]
