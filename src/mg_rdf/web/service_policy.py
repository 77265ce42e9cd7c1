"""Which ``SERVICE`` endpoints a /sparql query may call: a pure policy, decided
before the query is evaluated.

pyoxigraph evaluates ``SERVICE <url>`` against any URL it is given, with no
switch to turn federation off, so the endpoint must refuse what it does not
allow *before* evaluation. Two functions hold the decision:

- ``check_service_targets(query_text, allowlist)`` finds every SERVICE in a
  query and raises ``ServiceRefused`` (naming the endpoint) unless each target
  is allowed. Queries without the word "service" cost one substring test. Others
  are parsed with rdflib's SPARQL parser and translated to algebra (with the
  project's pre-declared prefixes), and every ``ServiceGraphPattern`` is
  checked. A variable target (``SERVICE ?x``) is refused; so is a query that
  uses the SERVICE keyword (outside strings, IRIs and comments) but that rdflib
  cannot parse, or in which rdflib finds fewer SERVICE patterns than the text
  holds: what cannot be checked is not run.
- ``endpoint_allowed(url, allowlist, resolve)`` decides one URL. Only http(s)
  URLs are ever allowed. An allow-list entry is either an exact URL, which is
  then allowed as it is (so a test may allow a loopback endpoint explicitly),
  or a prefix ending in ``/`` (e.g. ``https://query.wikidata.org/``). A URL
  allowed only by a prefix must name a public host: IP literals and every
  address the host name resolves to must not be loopback, link-local, private,
  unspecified, multicast or reserved.

The address check resolves names when the query arrives; pyoxigraph resolves
them again when it connects. Allow-list only hosts you trust not to rebind.
pyoxigraph does not follow redirects from a SERVICE endpoint (a redirect is an
error), so an allowed endpoint cannot bounce the call to another address.

- ``cap_service_results(query_text, limit)`` bounds what a SERVICE call may
  bring back. pyoxigraph sends the SERVICE pattern as it is (without the
  bindings of the rest of the query) and reads every row the endpoint returns,
  so each ``SERVICE <e> { P }`` is rewritten to
  ``{ SELECT * WHERE { SERVICE <e> { SELECT * WHERE { P } LIMIT n } } LIMIT n }``:
  the inner LIMIT asks the remote endpoint for no more than n rows (it does
  less work), the outer one is applied here, so an endpoint that ignores the
  LIMIT still cannot send more. The rewrite only adds braces and keywords
  around each SERVICE clause, found by the same scan that counts the keyword.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..vocab import PREFIXES

Resolver = Callable[..., list[tuple[Any, ...]]]


class ServiceRefused(Exception):
    """A query calls a SERVICE endpoint it may not call; the message names it."""


def endpoint_allowed(url: str, allowlist: Iterable[str],
                     resolve: Resolver = socket.getaddrinfo) -> tuple[bool, str]:
    """May a query call the SPARQL endpoint at ``url``? Returns (allowed, reason)."""
    allowlist = tuple(allowlist)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return False, f"{url} is not a valid URL ({e})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return False, f"{url}: only http and https endpoints can be called, not {scheme or 'a relative'}: URLs"
    host = parts.hostname
    if not host:
        return False, f"{url} names no host"
    if url in allowlist:
        return True, f"{url} is on the allow-list"
    if not any(_prefix_allows(entry, url, parts.hostname) for entry in allowlist):
        return False, f"{url} is not on this server's SERVICE allow-list"
    # Allowed by a prefix only: the host must be a public address, also after resolution,
    # so a name pointing into the server's own network cannot slip through.
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = resolve(host, port or (443 if scheme == "https" else 80), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            return False, f"{url}: the host {host} cannot be resolved ({e})"
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            return False, f"{url}: the host {host} resolves to no address"
    for address in addresses:
        why = non_public(address)
        if why:
            shown = host if str(address) == host else f"{host} ({address})"
            return False, f"{url}: {shown} is a {why} address"
    return True, f"{url} is allowed by the allow-list and names a public host"


def non_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be called (e.g. "loopback"), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return non_public(mapped)
    for kind, test in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved), ("private", address.is_private),
                       ("site-local", getattr(address, "is_site_local", False))):
        if test:
            return kind
    if not address.is_global:   # e.g. 100.64.0.0/10 (shared address space)
        return "non-global"
    return None


def _prefix_allows(entry: str, url: str, host: str | None) -> bool:
    # A prefix must end in "/" so that "https://a.org" cannot allow "https://a.org.evil.example/".
    if not entry.endswith("/") or not url.startswith(entry):
        return False
    try:
        return urlsplit(entry).hostname == host
    except ValueError:
        return False


_PARSER_LOCK = threading.Lock()   # rdflib's (pyparsing) parser is not safe to share between threads

# What hides a keyword from the parser: strings (long ones first), IRIs and comments. Each
# alternative also matches an unterminated token (to the end of its line or of the text), so no
# match ever fails part-way and the scan stays linear however the text is crafted.
_NOT_CODE = re.compile(r'"""(?:[^\\]|\\.)*?(?:"""|\\?\Z)|\'\'\'(?:[^\\]|\\.)*?(?:\'\'\'|\\?\Z)'
                       r'|"(?:[^"\\\n]|\\.)*+"?|\'(?:[^\'\\\n]|\\.)*+\'?'
                       r'|<[^<>"{}|^`\\\s]*+>|#[^\n\r]*+', re.DOTALL)
_SERVICE_KEYWORD = re.compile(r"(?<![\w?$:@-])SERVICE(?![\w:.-])", re.IGNORECASE)
_CODEPOINT = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")


def check_service_targets(query_text: str, allowlist: Iterable[str],
                          resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise ``ServiceRefused`` unless every SERVICE target of the query is allowed."""
    lowered = query_text.lower()
    if "service" not in lowered and "\\u" not in lowered:
        return
    # SPARQL allows \u escapes anywhere in a query; read the text as a parser that honours them would.
    text = _CODEPOINT.sub(lambda m: _codepoint(m.group(1) or m.group(2)), query_text) if "\\u" in lowered \
        else query_text
    if "service" not in text.lower():
        return
    keywords = service_keywords(text)
    try:
        targets = service_targets(text)
    except Exception as e:  # noqa: BLE001 - rdflib raises plain Exception, pyparsing errors, RecursionError…
        if keywords == 0:
            return   # "service" only in strings, IRIs or comments: the store's own parser judges the query
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ServiceRefused(f"SERVICE is refused: the query uses SERVICE but could not be checked ({reason})") \
            from None
    if len(targets) < keywords:
        raise ServiceRefused("SERVICE is refused: the query uses SERVICE in a way that could not be checked")
    allowlist = tuple(allowlist)
    for target in targets:
        if target is None:
            raise ServiceRefused("SERVICE is refused: its endpoint could not be read")
        if target.startswith("?"):
            raise ServiceRefused(f"SERVICE is refused: the endpoint must be a fixed IRI, not the variable {target}")
        allowed, reason = endpoint_allowed(target, allowlist, resolve)
        if not allowed:
            raise ServiceRefused(f"SERVICE <{target}> is refused: {reason}")


def service_keywords(text: str) -> int:
    """How often SERVICE appears as a keyword (not in a string, IRI, comment or name)."""
    return len(_SERVICE_KEYWORD.findall(_NOT_CODE.sub(" ", text)))


def service_targets(text: str) -> list[str | None]:
    """The endpoint of every SERVICE pattern rdflib finds: an IRI, ``?var``, or None if unknown."""
    from rdflib.plugins.sparql.algebra import translateQuery
    from rdflib.plugins.sparql.parser import parseQuery

    with _PARSER_LOCK:
        algebra = translateQuery(parseQuery(text), initNs=PREFIXES)
    found: list[str | None] = []
    _collect_services(algebra.algebra, found)
    return found


def _collect_services(node: object, found: list[str | None]) -> None:
    from rdflib.plugins.sparql.parserutils import CompValue
    from rdflib.term import URIRef, Variable

    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, CompValue):
            if n.name == "ServiceGraphPattern":
                term = n.get("term")
                found.append(str(term) if isinstance(term, URIRef)
                             else f"?{term}" if isinstance(term, Variable) else None)
            stack.extend(n.values())
        elif isinstance(n, dict):
            stack.extend(n.values())
        elif isinstance(n, (list, tuple)):
            stack.extend(n)


def _codepoint(hex_digits: str) -> str:
    try:
        return chr(int(hex_digits, 16))
    except ValueError:
        return "\ufffd"


_CAP_TOKENS = re.compile(rf"(?P<skip>{_NOT_CODE.pattern})|(?P<service>{_SERVICE_KEYWORD.pattern})|(?P<open>\{{)"
                         r"|(?P<close>\})", re.IGNORECASE | re.DOTALL)


def cap_service_results(query_text: str, limit: int) -> str:
    """``query_text`` with every SERVICE clause limited to ``limit`` rows, asked of the remote
    endpoint and enforced locally; unchanged when the query calls no SERVICE. Raises
    ``ServiceRefused`` when the clauses cannot be delimited with certainty."""
    lowered = query_text.lower()
    if "service" not in lowered and "\\u" not in lowered:
        return query_text
    decoded = _CODEPOINT.sub(lambda m: _codepoint(m.group(1) or m.group(2)), query_text) if "\\u" in lowered \
        else query_text
    expected = service_keywords(decoded)
    if expected == 0:
        return query_text
    n = max(0, int(limit))
    out: list[str] = []
    last, awaiting, found = 0, False, 0
    stack: list[bool] = []   # for each open brace: does it open a SERVICE body?
    for m in _CAP_TOKENS.finditer(query_text):
        kind = m.lastgroup
        if kind == "service":
            if awaiting:
                break   # two SERVICE keywords before a body: not a query this scan understands
            out += [query_text[last:m.start()], "{ SELECT * WHERE { "]
            last, awaiting = m.start(), True
            found += 1
        elif kind == "open":
            stack.append(awaiting)
            if awaiting:
                out += [query_text[last:m.end()], " SELECT * WHERE { "]
                last, awaiting = m.end(), False
        elif kind == "close":
            if not stack:
                break
            if stack.pop():
                out += [query_text[last:m.start()], f" }} LIMIT {n} }}", f" }} LIMIT {n} }}"]
                last = m.end()
    else:
        if not awaiting and not stack and found == expected == service_keywords(query_text):
            return "".join(out) + query_text[last:]
    raise ServiceRefused("SERVICE is refused: its clauses could not be delimited to apply the limit on "
                         "remote results")
