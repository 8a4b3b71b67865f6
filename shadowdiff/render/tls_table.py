"""Side-by-side certificate and handshake table per hostname, from a report's `tls` entries.
Rows that differ between the two sides are highlighted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from rich.table import Table
from rich.text import Text

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _leaf(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda posture: str((posture.get("leaf") or {}).get(field) or "—")


def _expiry(posture: dict[str, Any]) -> str:
    leaf = posture.get("leaf")
    if not leaf:
        return "—"
    days = posture.get("days_to_expiry")
    when = "expired" if days is not None and days < 0 else f"in {days} days"
    return f"{leaf['not_after'][:10]} ({when})"


def _key(posture: dict[str, Any]) -> str:
    leaf = posture.get("leaf")
    return f"{leaf['key_type']} {leaf['key_bits']}" if leaf else "—"


def _chain(posture: dict[str, Any]) -> str:
    chain = posture.get("chain") or []
    if not chain:
        return "—"
    order = "in order" if posture.get("chain_in_order") else "OUT OF ORDER"
    return f"{len(chain)} certificate{'s' if len(chain) != 1 else ''}, {order}"


def _accepted(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda posture: (
        ", ".join(name for name, ok in (posture.get(field) or {}).items() if ok) or "none"
    )


def _default(field: str) -> Callable[[dict[str, Any]], str]:
    def show(posture: dict[str, Any]) -> str:
        outcome = posture.get(field)
        if not outcome:
            return "—"
        if outcome["accepted"]:
            return f"{outcome['subject']} ({outcome['sha256'][:12]})"
        return "refused"

    return show


ROWS: Final[tuple[Row, ...]] = (
    ("handshake", lambda p: p.get("failure") or f"{p.get('version')}, {p.get('cipher')}"),
    ("ALPN (h2, http/1.1 offered)", lambda p: str(p.get("alpn") or "none")),
    ("subject", _leaf("subject")),
    ("names", lambda p: ", ".join((p.get("leaf") or {}).get("names") or []) or "—"),
    ("issuer", _leaf("issuer")),
    ("serial", _leaf("serial")),
    ("valid until", _expiry),
    ("key", _key),
    ("signature", _leaf("signature_algorithm")),
    ("sha256", lambda p: ((p.get("leaf") or {}).get("sha256") or "—")[:32]),
    ("verification", lambda p: "ok" if p.get("verified") else str(p.get("verify_error") or "—")),
    ("hostname", lambda p: "covered" if p.get("hostname_covered") else "NOT covered"),
    ("chain as presented", _chain),
    ("protocols accepted", _accepted("versions")),
    ("TLS 1.2 ciphers accepted", _accepted("cipher_families")),
    ("no SNI", _default("no_sni")),
    ("unknown SNI", _default("unknown_sni")),
)


def tls_table(entry: dict[str, Any]) -> Table:
    table = Table(title=f"TLS {entry['host']}", title_justify="left", pad_edge=False)
    table.add_column("", style="dim", no_wrap=True)
    table.add_column("baseline", overflow="fold")
    table.add_column("candidate", overflow="fold")
    for label, value in ROWS:
        before, after = value(entry["baseline"]), value(entry["candidate"])
        style = "" if before == after else "bold yellow"
        table.add_row(label, Text(before, style=style), Text(after, style=style))
    return table
