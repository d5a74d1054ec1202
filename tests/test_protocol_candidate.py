"""Candidate attribute parse, format and grammar checks (RFC 8839 §5.1, RFC 6544 §4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.protocol.candidate import (
    Candidate,
    CandidateError,
    format_candidate,
    grammar_problems,
    is_fqdn,
    is_ip_address,
    parse_candidate,
)

# Lines as real implementations send them (values after "candidate:").
REAL_WORLD = [
    "1 1 udp 2130706431 127.0.0.1 51151 typ host",  # aioice
    "1 1 UDP 2015363327 127.0.0.1 48373 typ host",  # libnice
    "2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998",  # RFC 8839 §5.1 example
    "3 1 udp 16777215 198.51.100.7 61000 typ relay raddr 192.0.2.3 rport 45664",
    "842163049 1 udp 1677729535 203.0.113.5 50123 typ srflx raddr 10.0.0.2 rport 50123 generation 0 "
    "ufrag abcd network-id 1",
    "1052651999 1 tcp 1518280447 10.0.0.2 9 typ host tcptype active generation 0 network-id 1",
    "4 1 TCP 2105458943 127.0.0.1 47913 typ host tcptype passive",
    "a0+B/c 2 udp 2130706430 2001:db8::1 5000 typ host",
    "5 1 udp 1862270975 192.0.2.9 6000 typ prflx raddr 0.0.0.0 rport 0",
]


@pytest.mark.parametrize("value", REAL_WORLD)
def test_format_candidate_round_trips_real_world_lines(value: str) -> None:
    assert format_candidate(parse_candidate(value)) == "candidate:" + value


@pytest.mark.parametrize("value", REAL_WORLD)
def test_grammar_problems_accepts_real_world_lines(value: str) -> None:
    assert grammar_problems(value) == []


@pytest.mark.parametrize("prefix", ["", "candidate:", "a=candidate:", "A=Candidate:", "  a=candidate:"])
def test_parse_candidate_accepts_every_prefix(prefix: str) -> None:
    candidate = parse_candidate(prefix + "1 1 udp 2130706431 127.0.0.1 51151 typ host\r\n")
    assert candidate == Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 51151, "host")


def test_parse_candidate_reads_every_field() -> None:
    candidate = parse_candidate(
        "a=candidate:842163049 1 udp 1677729535 203.0.113.5 50123 typ srflx raddr 10.0.0.2 rport 50123 "
        "generation 0 ufrag abcd network-id 1"
    )
    assert candidate.foundation == "842163049"
    assert candidate.component == 1
    assert candidate.protocol == "udp"
    assert candidate.priority == 1677729535
    assert (candidate.address, candidate.port) == ("203.0.113.5", 50123)
    assert candidate.kind == "srflx"
    assert (candidate.related_address, candidate.related_port) == ("10.0.0.2", 50123)
    assert candidate.tcptype is None
    assert candidate.extensions == (("generation", "0"), ("ufrag", "abcd"), ("network-id", "1"))
    assert candidate.extension("ufrag") == "abcd"
    assert candidate.extension("missing") is None


def test_parse_candidate_transport_is_case_insensitive() -> None:
    upper = parse_candidate("1 1 UDP 2015363327 127.0.0.1 48373 typ host")
    lower = parse_candidate("1 1 udp 2015363327 127.0.0.1 48373 typ host")
    assert upper.transport == "UDP" and lower.transport == "udp"
    assert upper.protocol == lower.protocol == "udp"


def test_parse_candidate_lifts_tcptype_from_extensions() -> None:
    candidate = parse_candidate("1 1 tcp 2105458943 127.0.0.1 9 typ host generation 0 tcptype active")
    assert candidate.tcptype == "active"
    assert candidate.extensions == (("generation", "0"),)
    assert format_candidate(candidate).endswith("typ host tcptype active generation 0")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "0 fields"),
        ("1 1 udp 2130706431 127.0.0.1 51151 typ", "7 fields"),
        ("1 1 udp 2130706431 127.0.0.1 51151 type host", "expected 'typ'"),
        ("1 x udp 2130706431 127.0.0.1 51151 typ host", "component-id 'x'"),
        ("1 1 udp -5 127.0.0.1 51151 typ host", "priority '-5'"),
        ("1 1 udp 2130706431 127.0.0.1 port typ host", "port 'port'"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx raddr 10.0.0.1 rport x", "rport 'x'"),
        ("1 1 udp 2130706431 127.0.0.1 51151 typ host generation", "'generation' has no value"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx raddr", "'raddr' has no value"),
    ],
)
def test_parse_candidate_rejects_unparseable_lines(value: str, message: str) -> None:
    with pytest.raises(CandidateError, match=message):
        parse_candidate(value)


def test_candidate_error_is_value_error() -> None:
    assert issubclass(CandidateError, ValueError)


def test_grammar_problems_reports_parse_error_as_single_problem() -> None:
    problems = grammar_problems("candidate:1 1 udp")
    assert len(problems) == 1
    assert "fields" in problems[0]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("123456789012345678901234567890123 1 udp 2130706431 127.0.0.1 1 typ host", "has 33 characters"),
        ("ab-c 1 udp 2130706431 127.0.0.1 1 typ host", "contains '-'"),
        ("1 0 udp 2130706431 127.0.0.1 1 typ host", "component-id 0 is outside 1..256"),
        ("1 257 udp 2130706431 127.0.0.1 1 typ host", "component-id 257 is outside 1..256"),
        ("1 1 sctp 2130706431 127.0.0.1 1 typ host", "neither UDP"),
        ("1 1 udp 0 127.0.0.1 1 typ host", "priority 0 is outside 1..2^31-1"),
        ("1 1 udp 2147483648 127.0.0.1 1 typ host", "priority 2147483648 is outside"),
        ("1 1 udp 2130706431 999.1.1.1 1 typ host", "neither an IPv4 address"),
        ("1 1 udp 2130706431 fe80::1%eth0 1 typ host", "neither an IPv4 address"),
        ("1 1 udp 2130706431 host.example.com 1 typ host", "is an FQDN"),
        ("1 1 udp 2130706431 6f1c5e2a-2f1e.local 1 typ host", "is an FQDN"),
        ("1 1 udp 2130706431 127.0.0.1 65536 typ host", "port 65536 is outside"),
        ("1 1 udp 2130706431 127.0.0.1 1 typ bogus", "candidate type 'bogus'"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx", "raddr is missing"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx", "rport is missing"),
        ("1 1 udp 1862270975 192.0.2.3 1 typ prflx raddr 10.0.0.1", "rport is missing"),
        ("1 1 udp 16777215 192.0.2.3 1 typ relay rport 5", "raddr is missing"),
        ("1 1 udp 2130706431 127.0.0.1 1 typ host raddr 10.0.0.1 rport 2", "raddr is present"),
        ("1 1 udp 2130706431 127.0.0.1 1 typ host rport 2", "rport is present"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx raddr nowhere! rport 2", "raddr 'nowhere!'"),
        ("1 1 udp 1694498815 192.0.2.3 1 typ srflx raddr 10.0.0.1 rport 70000", "rport 70000 is outside"),
        ("1 1 tcp 2130706431 127.0.0.1 1 typ host", "tcptype is missing"),
        ("1 1 tcp 2130706431 127.0.0.1 1 typ host tcptype sideways", "tcptype 'sideways'"),
        ("1 1 udp 2130706431 127.0.0.1 1 typ host tcptype active", "appears on a udp candidate"),
        (
            "1 1 udp 1694498815 192.0.2.3 1 typ srflx rport 2 raddr 10.0.0.1",
            "raddr appears among the extensions",
        ),
        ("1 1 udp 2130706431 127.0.0.1 1 typ host na:me 1", "extension name 'na:me'"),
        ("1 1 udp 2130706431 127.0.0.1 1 typ host name \u00e9", "not a string of VCHARs"),
        ("1 1  udp 2130706431 127.0.0.1 1 typ host", "more than one space"),
    ],
)
def test_grammar_problems_names_each_violation(value: str, fragment: str) -> None:
    problems = grammar_problems(value)
    assert any(fragment in problem for problem in problems), problems
    assert all("RFC" in problem for problem in problems)


def test_grammar_problems_lists_several_violations_at_once() -> None:
    problems = grammar_problems("a=candidate:x-y 0 udp 0 127.0.0.1 1 typ srflx")
    assert len(problems) == 5, problems


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("example.com", True),
        ("host.example.com.", True),
        ("6f1c5e2a-2f1e-4c3a.local", True),
        ("localhost", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("2001:db8::1", False),
        ("1.2.3", False),
        ("-bad.example", False),
        ("bad-.example", False),
        ("a..b", False),
        ("", False),
        ("under_score.example", False),
        ("a" * 64 + ".example", False),
    ],
)
def test_is_fqdn_classifies_addresses(address: str, expected: bool) -> None:
    assert is_fqdn(address) is expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.1", True),
        ("::", True),
        ("0.0.0.0", True),
        ("[::1]", False),
        ("fe80::1%1", False),
        ("x", False),
    ],
)
def test_is_ip_address_accepts_sdp_literals_only(address: str, expected: bool) -> None:
    assert is_ip_address(address) is expected


ice_chars = st.text(alphabet="abcXYZ0189+/", min_size=1, max_size=32)
tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12).filter(
    lambda s: s.lower() not in ("raddr", "rport", "tcptype", "typ")
)
vchars = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    kind = draw(st.sampled_from(["host", "srflx", "prflx", "relay"]))
    transport = draw(st.sampled_from(["udp", "UDP", "tcp", "TCP"]))
    related = kind != "host"
    return Candidate(
        foundation=draw(ice_chars),
        component=draw(st.integers(min_value=1, max_value=256)),
        transport=transport,
        priority=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        address=draw(addresses),
        port=draw(st.integers(min_value=0, max_value=65535)),
        type=kind,
        related_address=draw(addresses) if related else None,
        related_port=draw(st.integers(min_value=0, max_value=65535)) if related else None,
        tcptype=draw(st.sampled_from(["active", "passive", "so"])) if transport.lower() == "tcp" else None,
        extensions=tuple(draw(st.lists(st.tuples(tokens, vchars), max_size=4))),
    )


@given(candidate=candidates())
def test_parse_candidate_inverts_format_candidate(candidate: Candidate) -> None:
    text = format_candidate(candidate)
    assert parse_candidate(text) == candidate
    assert parse_candidate("a=" + text) == candidate
    assert grammar_problems(text) == []
