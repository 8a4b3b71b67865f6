"""Side-by-side certificate and handshake table per hostname, from a report's `tls` entries.
Rows that differ between the two sides are highlighted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from rich.table import Table
from rich.text import Text

from shadowdiff.report.schema import Posture, TlsHost

Row = tuple[str, Callable[[Posture], str]]


def _leaf(
    field: Literal["subject", "issuer", "serial", "signature_algorithm"],
) -> Callable[[Posture], str]:
    def show(posture: Posture) -> str:
        leaf = posture.get("leaf")
        return str((leaf[field] if leaf else None) or "—")

    return show


def _expiry(posture: Posture) -> str:
    leaf = posture.get("leaf")
    if not leaf:
        return "—"
    days = posture.get("days_to_expiry")
    when = "expired" if days is not None and days < 0 else f"in {days} days"
    return f"{leaf['not_after'][:10]} ({when})"


def _key(posture: Posture) -> str:
    leaf = posture.get("leaf")
    return f"{leaf['key_type']} {leaf['key_bits']}" if leaf else "—"


def _chain(posture: Posture) -> str:
    chain = posture.get("chain") or []
    if not chain:
        return "—"
    order = "in order" if posture.get("chain_in_order") else "OUT OF ORDER"
    return f"{len(chain)} certificate{'s' if len(chain) != 1 else ''}, {order}"


def _accepted(field: Literal["versions", "cipher_families"]) -> Callable[[Posture], str]:
    return lambda posture: (
        ", ".join(name for name, ok in (posture.get(field) or {}).items() if ok) or "none"
    )


def _default(field: Literal["no_sni", "unknown_sni"]) -> Callable[[Posture], str]:
    def show(posture: Posture) -> str:
        outcome = posture.get(field)
        if not outcome:
            return "—"
        if outcome["accepted"]:
            # An accepted handshake always names its certificate (tls.probe).
            return f"{outcome['subject']} ({(outcome['sha256'] or '')[:12]})"
        return "refused"

    return show


ROWS: Final[tuple[Row, ...]] = (
    ("handshake", lambda p: p.get("failure") or f"{p.get('version')}, {p.get('cipher')}"),
    ("ALPN (h2, http/1.1 offered)", lambda p: str(p.get("alpn") or "none")),
    ("subject", _leaf("subject")),
    ("names", lambda p: ", ".join(leaf["names"] if (leaf := p.get("leaf")) else ()) or "—"),
    ("issuer", _leaf("issuer")),
    ("serial", _leaf("serial")),
    ("valid until", _expiry),
    ("key", _key),
    ("signature", _leaf("signature_algorithm")),
    ("sha256", lambda p: ((leaf["sha256"] if (leaf := p.get("leaf")) else None) or "—")[:32]),
    ("verification", lambda p: "ok" if p.get("verified") else str(p.get("verify_error") or "—")),
    ("hostname", lambda p: "covered" if p.get("hostname_covered") else "NOT covered"),
    ("chain as presented", _chain),
    ("protocols accepted", _accepted("versions")),
    ("TLS 1.2 ciphers accepted", _accepted("cipher_families")),
    ("no SNI", _default("no_sni")),
    ("unknown SNI", _default("unknown_sni")),
)


def tls_table(entry: TlsHost) -> Table:
    table = Table(title=f"TLS {entry['host']}", title_justify="left", pad_edge=False)
    table.add_column("", style="dim", no_wrap=True)
    table.add_column("baseline", overflow="fold")
    table.add_column("candidate", overflow="fold")
    for label, value in ROWS:
        before, after = value(entry["baseline"]), value(entry["candidate"])
        style = "" if before == after else "bold yellow"
        table.add_row(label, Text(before, style=style), Text(after, style=style))
    return table
