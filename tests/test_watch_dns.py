"""Asking a nameserver: what a real dnsmasq answers, and what hostile or broken nameservers
(a loopback UDP server answering whatever the test says) end as: a `Resolution` with an error
class, never an exception or a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from shadowdiff.watch.dns import MAX_ADDRESSES, Nameserver, parse_nameserver, resolve
from shadowdiff.watch.shares import host_shares, overall_shares, target_addresses

from .dnsmasq import running_dnsmasq

Answer = Callable[[dns.message.Message], bytes | None]


class _Server(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.answer(dns.message.from_wire(data))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@pytest.fixture
async def nameserver() -> AsyncIterator[Callable[[Answer], Nameserver]]:
    transports: list[asyncio.BaseTransport] = []

    async def serve(answer: Answer) -> Nameserver:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Server(answer), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return Nameserver("127.0.0.1", transport.get_extra_info("sockname")[1])

    yield serve  # type: ignore[misc]
    for transport in transports:
        transport.close()


def _reply(
    query: dns.message.Message,
    *records: tuple[str, str, str],
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if query.question[0].rdtype == dns.rdatatype.A:
        for name, kind, value in records:
            response.answer.append(dns.rrset.from_text(name, 30, "IN", kind, value))
    wire: bytes = response.to_wire()
    return wire


async def test_dnsmasq_records_point_at_each_target_with_their_ttl(tmp_path: Path) -> None:
    records = [("127.0.0.1", "app.example.com"), ("127.0.0.2", "app.example.com")]
    with running_dnsmasq(tmp_path, records) as server:
        found = await resolve("app.example.com", Nameserver("127.0.0.1", server.port))
        missing = await resolve("nothing.example.com", Nameserver("127.0.0.1", server.port))
    assert sorted(found.addresses) == ["127.0.0.1", "127.0.0.2"] and found.ttl_s == 1
    shares = host_shares(found, target_addresses("127.0.0.1", "127.0.0.2"))
    assert overall_shares([shares]) == {"baseline": 0.5, "candidate": 0.5, "other": 0}
    # dnsmasq with no upstream refuses names it does not serve.
    assert missing.error == "refused" and not missing.addresses


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda q: _reply(q, rcode=dns.rcode.NXDOMAIN), "nxdomain"),
        (lambda q: _reply(q, rcode=dns.rcode.SERVFAIL), "servfail"),
        (lambda q: _reply(q), "no_address"),
        (lambda q: q.id.to_bytes(2, "big") + b"\x80\x00garbage\r\n\x00", "malformed"),
        (lambda q: None, "timeout"),
        (
            lambda q: _reply(
                q,
                ("app.example.com.", "CNAME", "b.example.com."),
                ("b.example.com.", "CNAME", "app.example.com."),
            ),
            "cname_loop",
        ),
    ],
    ids=["nxdomain", "servfail", "empty", "garbage", "silent", "cname loop"],
)
async def test_a_broken_nameserver_is_a_classified_failure(
    nameserver: Callable[[Answer], Nameserver], answer: Answer, error: str
) -> None:
    server = await nameserver(answer)  # type: ignore[misc]
    found = await asyncio.wait_for(resolve("app.example.com", server, timeout_s=0.3), 5)
    assert found.error == error and found.addresses == ()
    assert "\n" not in found.message and len(found.message) <= 200


async def test_a_huge_answer_is_capped_and_records_for_other_names_are_ignored(
    nameserver: Callable[[Answer], Nameserver],
) -> None:
    many = [("app.example.com.", "A", f"10.0.{i // 256}.{i % 256}") for i in range(500)]
    planted = ("evil.example.net.", "A", "203.0.113.66")
    server = await nameserver(lambda q: _reply(q, planted, *many))  # type: ignore[misc]
    found = await resolve("app.example.com", server)
    assert len(found.addresses) == MAX_ADDRESSES and "203.0.113.66" not in found.addresses


async def test_a_cname_through_a_target_name_counts_as_that_target(
    nameserver: Callable[[Answer], Nameserver],
) -> None:
    chain = (
        ("app.example.com.", "CNAME", "gw.lb.example.net."),
        ("gw.lb.example.net.", "A", "198.51.100.7"),
    )
    server = await nameserver(lambda q: _reply(q, *chain))  # type: ignore[misc]
    found = await resolve("app.example.com", server)
    assert found.addresses == ("198.51.100.7",) and found.cnames == ("gw.lb.example.net",)
    targets = target_addresses("203.0.113.10", "gw.lb.example.net")
    assert host_shares(found, targets).counts["candidate"] == 1


async def test_a_closed_nameserver_port_is_a_failure_not_a_traceback() -> None:
    from .conftest import unused_port

    found = await resolve("app.example.com", Nameserver("127.0.0.1", unused_port()), 0.3)
    assert found.error in ("unreachable", "timeout")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)), ("[::1]:53", Nameserver("::1", 53)),
     ("127.0.0.1", Nameserver("127.0.0.1", 53))],
)  # fmt: skip
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "text", ["dns.example.com:53", "127.0.0.1:0", "127.0.0.1:x", "1.2.3.4:99999"]
)
def test_parse_nameserver_refuses_what_is_not_an_address_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_nameserver(text)
