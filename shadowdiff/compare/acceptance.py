"""Expected differences: match a difference against the scenario's `accept` rules. Pure; the
caller passes today's date, so expiry is decided at the edge, not by a clock in here."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from yarl import URL

from shadowdiff.difference import Difference
from shadowdiff.spec import RequestSpec

if TYPE_CHECKING:
    from shadowdiff.scenario.model import Acceptance


@cache
def glob_pattern(pattern: str) -> re.Pattern[str]:
    """`*` any run of characters, `?` one; everything else literal (JSON paths have brackets)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AcceptanceMatch:
    rule: int  # index in the scenario's accept list
    reason: str
    until: datetime.date | None
    expired: bool


def _matches(rule: Acceptance, request: RequestSpec, difference: Difference) -> bool:
    if rule.kind is not None and rule.kind != difference.kind:
        return False
    if not glob_pattern(rule.field).match(difference.field):
        return False
    if rule.request is not None and not glob_pattern(rule.request).match(request.name):
        return False
    if rule.host is not None and URL(request.url, encoded=True).host != rule.host:
        return False
    if rule.baseline is not None and rule.baseline != difference.baseline:
        return False
    return rule.candidate is None or rule.candidate == difference.candidate


def find_acceptance(
    rules: Sequence[Acceptance],
    request: RequestSpec,
    difference: Difference,
    today: datetime.date,
) -> AcceptanceMatch | None:
    """The rule that accepts `difference`, preferring one still in force over an expired one."""
    expired: AcceptanceMatch | None = None
    for index, rule in enumerate(rules):
        if not _matches(rule, request, difference):
            continue
        is_expired = rule.until is not None and rule.until < today
        match = AcceptanceMatch(index, rule.reason, rule.until, is_expired)
        if not is_expired:
            return match
        expired = expired or match
    return expired
