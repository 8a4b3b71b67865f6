"""Ask one nameserver (host:port) for a hostname's addresses, as a client's resolver would, and
keep what the answer says: the addresses, their smallest TTL, the CNAME chain. The one I/O of
this module is dnspython's query; every failure (timeout, NXDOMAIN, SERVFAIL, REFUSED, an answer
that does not parse or loops) is a `Resolution` with an `error`, never an exception.

The system resolver (getaddrinfo) cannot be told a nameserver's port and gives no TTL, hence
dnspython. Both A and AAAA are asked: a client with IPv6 would use either.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

DnsError = Literal[
    "timeout",  # no answer within the timeout
    "nxdomain",  # the name does not exist
    "servfail",  # the nameserver failed to answer
    "refused",  # the nameserver refused the query (not authoritative, no recursion)
    "no_address",  # the name exists but has no A or AAAA record
    "malformed",  # an answer that does not parse, or does not answer the question
    "cname_loop",  # CNAMEs that loop or go on past MAX_CNAMES
    "unreachable",  # nothing listens at the nameserver's address (ICMP refused)
    "other",  # another response code (the message says which)
]

# Addresses kept per name: a hostile answer may carry thousands, and a weighted record set
# of a real cutover has a handful.
MAX_ADDRESSES: Final = 64
# CNAME hops followed, within an answer and across queries (resolvers stop near 8 to 16).
MAX_CNAMES: Final = 8
DEFAULT_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str  # an IP address
    port: int


def parse_nameserver(text: str) -> Nameserver:
    """`127.0.0.1:5353`, `[::1]:5353` or `127.0.0.1` (port 53); ValueError otherwise."""
    host, port_text = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [IPv6]:PORT; got {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(
            f"expected the nameserver's IP address and port, such as 127.0.0.1:5353; got {text!r}"
        ) from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected a port from 1 to 65535; got {port_text!r}")
    return Nameserver(address, int(port_text))


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the nameserver answered for one hostname."""

    host: str
    addresses: tuple[str, ...] = ()  # A then AAAA records, in answer order, at most 64
    ttl_s: int | None = None  # the smallest TTL among the records that led to the addresses
    cnames: tuple[str, ...] = ()  # the names the chain went through, in order
    error: DnsError | None = None
    message: str = ""


async def resolve(
    host: str, nameserver: Nameserver, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Resolution:
    """The addresses `host` has at `nameserver`, following CNAMEs; never raises for what the
    nameserver does."""
    name = host.rstrip(".").lower()
    cnames: list[str] = []
    ttls: list[int] = []
    for _ in range(MAX_CNAMES + 1):
        answers = await asyncio.gather(
            _ask(name, "A", nameserver, timeout_s), _ask(name, "AAAA", nameserver, timeout_s)
        )
        failed = [answer for answer in answers if isinstance(answer, Resolution)]
        # One family failing while the other answers is what a client would get along with:
        # it connects to what it got. Both failing is the name's failure.
        if len(failed) == 2:
            first = failed[0]
            return Resolution(
                host, (), None, tuple(cnames), first.error, first.message or str(first.error)
            )
        addresses: list[str] = []
        next_name: str | None = None
        for answer in answers:
            if isinstance(answer, Resolution):
                continue
            found, chain, chain_ttls, target = answer
            for cname in chain:
                if cname not in cnames:
                    cnames.append(cname)
            ttls.extend(chain_ttls)
            addresses.extend(a for a in found if a not in addresses)
            next_name = next_name or target
        if addresses:
            return Resolution(
                host, tuple(addresses[:MAX_ADDRESSES]), min(ttls) if ttls else None, tuple(cnames)
            )
        if next_name is None:
            return Resolution(host, (), None, tuple(cnames), "no_address", "no A or AAAA record")
        if next_name in cnames[:-1] or len(cnames) > MAX_CNAMES:
            break
        name = next_name  # the chain ends at a name this answer did not resolve: ask for it
    return Resolution(host, (), None, tuple(cnames), "cname_loop", "CNAMEs loop or go on too long")


# One family's answer: (addresses, CNAME names passed, TTLs, the name a chain ended at when it
# has no addresses in this answer).
_Answer = tuple[list[str], list[str], list[int], str | None]


async def _ask(
    name: str, record_type: str, nameserver: Nameserver, timeout_s: float
) -> _Answer | Resolution:
    try:
        query = dns.message.make_query(name, record_type)
    except (dns.exception.DNSException, ValueError) as exc:
        return Resolution(name, error="malformed", message=f"not a DNS name: {exc}")
    try:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, nameserver.host, timeout=timeout_s, port=nameserver.port
        )
    except dns.exception.Timeout:
        return Resolution(name, error="timeout", message=f"no answer within {timeout_s:g} s")
    except ConnectionRefusedError:
        return Resolution(name, error="unreachable", message="the nameserver's port is closed")
    except (dns.exception.DNSException, ValueError, UnicodeError, EOFError) as exc:
        return Resolution(name, error="malformed", message=_one_line(exc))
    except OSError as exc:
        return Resolution(name, error="unreachable", message=_one_line(exc))
    code = response.rcode()
    if code == dns.rcode.NXDOMAIN:
        return Resolution(name, error="nxdomain", message="NXDOMAIN")
    if code == dns.rcode.SERVFAIL:
        return Resolution(name, error="servfail", message="SERVFAIL")
    if code == dns.rcode.REFUSED:
        return Resolution(name, error="refused", message="REFUSED")
    if code != dns.rcode.NOERROR:
        return Resolution(name, error="other", message=dns.rcode.to_text(code)[:40])
    return _read_answer(name, record_type, response)


def _read_answer(name: str, record_type: str, response: dns.message.Message) -> _Answer:
    """Follow the CNAME chain from `name` within the answer section and take the addresses of
    the name it ends at; records about other names are ignored (a resolver's bailiwick rule
    in small: an answer cannot give addresses to a name nobody asked about)."""
    wanted = dns.rdatatype.from_text(record_type)
    current = dns.name.from_text(name)
    chain: list[str] = []
    ttls: list[int] = []
    for _ in range(MAX_CNAMES + 1):
        cname = next(
            (
                rrset
                for rrset in response.answer
                if rrset.name == current and rrset.rdtype == dns.rdatatype.CNAME
            ),
            None,
        )
        if cname is None:
            break
        target = next(iter(cname)).target
        ttls.append(cname.ttl)
        chain.append(_text(target))
        current = target
    addresses: list[str] = []
    for rrset in response.answer:
        if rrset.name == current and rrset.rdtype == wanted:
            ttls.append(rrset.ttl)
            for record in rrset:
                if len(addresses) < MAX_ADDRESSES:
                    addresses.append(str(ipaddress.ip_address(record.address)))
    ended_at = _text(current) if chain and not addresses else None
    return addresses, chain, ttls if addresses or chain else [], ended_at


def _text(name: dns.name.Name) -> str:
    # to_text escapes every byte that is not printable (\DDD), so a hostile label cannot
    # carry a line break into the table; bounded all the same.
    return name.to_text(omit_final_dot=True).lower()[:255]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
