"""The SERVICE policy, tested as a pure function: addresses in, decision out.

Nothing here opens a connection: names are resolved by a fake resolver, and no
query is evaluated.
"""

from __future__ import annotations

import socket

import pytest

from mg_rdf.web.service_policy import ServiceRefused, check_service_targets, endpoint_allowed, service_keywords

WIKIDATA = "https://query.wikidata.org/sparql"


def resolver(mapping: dict[str, list[str]]):
    """A stand-in for socket.getaddrinfo that answers from ``mapping`` and records what it was asked."""
    asked: list[str] = []

    def resolve(host, port, type=0, **_):
        asked.append(host)
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in mapping[host]]

    resolve.asked = asked
    return resolve


def no_dns(*args, **kwargs):
    raise AssertionError("the policy must not resolve names here")


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("[::1]", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.5", "private"), ("172.31.255.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("[fe80::1]", "link-local"), ("[fc00::1]", "private"),
    ("[fd12:3456::1]", "private"), ("0.0.0.0", "unspecified"), ("[::]", "unspecified"),
    ("224.0.0.1", "multicast"), ("[ff02::1]", "multicast"), ("240.0.0.1", "reserved"),
    ("[::ffff:127.0.0.1]", "loopback"), ("100.64.0.1", "non-global"),
])
def test_internal_addresses_are_refused_even_under_an_allowed_prefix(address, kind):
    url = f"http://{address}/sparql"
    allowed, reason = endpoint_allowed(url, [f"http://{address}/"], resolve=no_dns)
    assert not allowed, reason
    assert kind in reason, reason


def test_a_public_address_under_an_allowed_prefix_is_allowed():
    allowed, reason = endpoint_allowed("http://93.184.215.14/sparql", ["http://93.184.215.14/"], resolve=no_dns)
    assert allowed, reason


def test_a_host_name_resolving_to_a_private_address_is_refused():
    resolve = resolver({"data.example": ["10.0.0.1"]})
    allowed, reason = endpoint_allowed("https://data.example/sparql", ["https://data.example/"], resolve=resolve)
    assert not allowed
    assert "10.0.0.1" in reason and "private" in reason
    assert resolve.asked == ["data.example"]


def test_a_host_name_is_refused_if_any_of_its_addresses_is_internal():
    resolve = resolver({"data.example": ["93.184.215.14", "127.0.0.1"]})
    allowed, reason = endpoint_allowed("https://data.example/sparql", ["https://data.example/"], resolve=resolve)
    assert not allowed and "loopback" in reason


def test_a_host_name_resolving_to_public_addresses_is_allowed_under_its_prefix():
    resolve = resolver({"query.wikidata.org": ["208.80.154.224", "2620:0:861:ed1a::1"]})
    allowed, reason = endpoint_allowed(WIKIDATA, ["https://query.wikidata.org/"], resolve=resolve)
    assert allowed, reason


def test_a_name_that_does_not_resolve_is_refused():
    allowed, reason = endpoint_allowed("https://nowhere.example/sparql", ["https://nowhere.example/"],
                                       resolve=resolver({}))
    assert not allowed and "cannot be resolved" in reason


def test_localhost_by_name_is_refused():
    resolve = resolver({"localhost": ["127.0.0.1", "::1"]})
    allowed, reason = endpoint_allowed("http://localhost:8080/sparql", ["http://localhost:8080/"], resolve=resolve)
    assert not allowed and "loopback" in reason


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.org/", "ftp://example.org/sparql",
                                 "javascript:alert(1)", "/sparql", "data:text/plain,hi"])
def test_only_http_and_https_can_be_called_even_when_allow_listed(url):
    allowed, reason = endpoint_allowed(url, [url], resolve=no_dns)
    assert not allowed
    assert "only http and https" in reason


def test_an_allow_listed_loopback_url_is_allowed_exactly_and_only_exactly():
    allowlist = ["http://127.0.0.1:9999/sparql"]
    assert endpoint_allowed("http://127.0.0.1:9999/sparql", allowlist, resolve=no_dns)[0]
    for other in ("http://127.0.0.1:9999/sparql2", "http://127.0.0.1:9998/sparql", "http://127.0.0.1:9999/"):
        allowed, reason = endpoint_allowed(other, allowlist, resolve=no_dns)
        assert not allowed, other
        assert "not on this server's SERVICE allow-list" in reason


def test_urls_not_on_the_allow_list_are_refused_without_resolving_them():
    allowed, reason = endpoint_allowed(WIKIDATA, [], resolve=no_dns)
    assert not allowed and "allow-list" in reason


def test_a_prefix_entry_must_end_with_a_slash_so_it_cannot_match_a_longer_host_name():
    resolve = resolver({"a.example.evil.example": ["93.184.215.14"]})
    allowed, _ = endpoint_allowed("https://a.example.evil.example/sparql", ["https://a.example"], resolve=resolve)
    assert not allowed
    assert resolve.asked == []


# --- finding SERVICE in queries ---

def test_a_query_without_service_is_not_parsed_at_all(monkeypatch):
    import mg_rdf.web.service_policy as policy

    monkeypatch.setattr(policy, "service_targets", lambda text: pytest.fail("parsed a query without SERVICE"))
    check_service_targets("SELECT * WHERE { ?s a mg:Campaign }", [])


def test_service_in_strings_iris_and_names_is_not_a_service_call():
    query = ('PREFIX ex: <http://example.org/service#>\nSELECT ?service WHERE { ?service ex:service "SERVICE" ; '
             '<http://example.org/SERVICE> ?x . # SERVICE <http://example.org/> {}\n}')
    assert service_keywords(query) == 0
    check_service_targets(query, [], resolve=no_dns)


def test_service_to_an_unlisted_endpoint_is_refused_naming_it():
    with pytest.raises(ServiceRefused, match=r"SERVICE <http://example.org/sparql> is refused.*allow-list"):
        check_service_targets("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", [],
                              resolve=no_dns)


@pytest.mark.parametrize("query", [
    "select * where { service silent <http://example.org/sparql> { ?s ?p ?o } }",
    "SELECT * WHERE { ?s ?p ?o .SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
    "SELECT * WHERE { FILTER EXISTS { SERVICE wd:Q42 { ?s ?p ?o } } }",
    "SELECT * WHERE { { SELECT ?s WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } } } }",
    "ASK { OPTIONAL { SERVICE <http://example.org/sparql> { ?s ?p ?o } } }",
    "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o MINUS { SERVICE <http://example.org/sparql> { ?s ?p ?o } } }",
    r"SELECT * WHERE { \u0053ERVICE <http://example.org/sparql> { ?s ?p ?o } }",
])
def test_service_is_found_wherever_it_hides(query):
    with pytest.raises(ServiceRefused):
        check_service_targets(query, [], resolve=no_dns)


def test_a_variable_service_endpoint_is_refused():
    with pytest.raises(ServiceRefused, match=r"variable \?endpoint"):
        check_service_targets("SELECT * WHERE { VALUES ?endpoint { <http://127.0.0.1:9999/sparql> } "
                              "SERVICE ?endpoint { ?s ?p ?o } }", ["http://127.0.0.1:9999/sparql"], resolve=no_dns)


def test_a_query_rdflib_cannot_parse_is_refused_when_it_uses_service():
    with pytest.raises(ServiceRefused, match="could not be checked"):
        check_service_targets("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } ",
                              [], resolve=no_dns)


def test_an_allow_listed_endpoint_passes_and_every_other_is_still_checked():
    allowlist = ["http://127.0.0.1:9999/sparql"]
    check_service_targets("SELECT * WHERE { SERVICE <http://127.0.0.1:9999/sparql> { ?s ?p ?o } }", allowlist,
                          resolve=no_dns)
    with pytest.raises(ServiceRefused, match="example.org"):
        check_service_targets("SELECT * WHERE { SERVICE <http://127.0.0.1:9999/sparql> { ?s ?p ?o } "
                              "SERVICE <http://example.org/sparql> { ?s ?p ?o } }", allowlist, resolve=no_dns)


def test_prefixed_service_iris_use_the_predeclared_prefixes():
    # wd: is pre-declared (mg_rdf.vocab.PREFIXES), so wd:Q42 means http://www.wikidata.org/entity/Q42.
    with pytest.raises(ServiceRefused, match=r"http://www\.wikidata\.org/entity/Q42"):
        check_service_targets("SELECT * WHERE { SERVICE wd:Q42 { ?s ?p ?o } }", [], resolve=no_dns)
