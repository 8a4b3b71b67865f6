"""Set-Cookie compared by what a browser makes of it (RFC 6265): a lifetime spelled another
way is alike, a session cookie made persistent or a cookie deleted on one side only is not."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.compare.cookies import compare_cookies, cookie_lifetime, parse_cookie_date
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.scenario import load_scenario

from .test_compare import answer, differences

DATE_S = 1_796_040_000  # Mon, 30 Nov 2026 12:00:00 GMT: the Date both sides answer with
DATE = formatdate(DATE_S, usegmt=True)
HOUR_ON = formatdate(DATE_S + 3600, usegmt=True)
HOUR_AGO = formatdate(DATE_S - 3600, usegmt=True)
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def cookies(baseline: str, candidate: str) -> set[tuple[str, str, str]]:
    return differences(
        answer(headers=[("Date", DATE), ("Set-Cookie", baseline)]),
        answer("candidate", headers=[("Date", DATE), ("Set-Cookie", candidate)]),
    )


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [
        ("sid=1; Max-Age=3600; Path=/", f"sid=2; Expires={HOUR_ON}; Path=/"),
        ("sid=1; Max-Age=3600", "sid=1; Max-Age=86400"),
        (f"sid=1; Expires={HOUR_ON}", "sid=1; Expires=Fri, 31 Dec 2099 23:59:59 GMT"),
        ("sid=; Max-Age=0", f"sid=; Expires={EPOCH}"),
        ("sid=; Max-Age=-1", f"sid=; Expires={HOUR_AGO}"),
        # RFC 6265 section 5.3 step 3: Max-Age wins over Expires.
        (f"sid=1; Max-Age=0; Expires={HOUR_ON}", "sid=1; Max-Age=0"),
        (f"sid=1; Max-Age=60; Expires={EPOCH}", "sid=1; Max-Age=60"),
        # What a browser ignores (section 5.2.1, 5.2.2) leaves a session cookie.
        ("sid=1; Max-Age=soon", "sid=1"),
        ("sid=1; Expires=tomorrow", "sid=1"),
        ("sid=1; Expires=Sun, 31 Feb 2027 10:00:00 GMT", "sid=1"),
        # The other HTTP-date forms, and the last valid attribute of each name counts.
        (f"sid=1; Expires={HOUR_ON}", "sid=1; expires=Sunday, 06-Nov-44 08:49:37 GMT"),
        (f"sid=1; Expires={HOUR_ON}", "sid=1; Expires=Sun Nov  6 08:49:37 2044"),
        ("sid=1; Max-Age=0; Max-Age=60", "sid=1; Max-Age=60"),
    ],
    ids=[
        "max-age-vs-expires",
        "another-max-age",
        "another-expires",
        "deleted-two-ways",
        "deleted-negative-vs-past",
        "max-age-wins-deleting",
        "max-age-wins-keeping",
        "invalid-max-age",
        "invalid-expires",
        "no-such-date",
        "rfc850-date",
        "asctime-date",
        "last-max-age",
    ],
)
def test_a_lifetime_spelled_another_way_is_alike(baseline: str, candidate: str) -> None:
    assert cookies(baseline, candidate) == set()


@pytest.mark.parametrize(
    ("baseline", "candidate", "severity"),
    [
        ("sid=1; Max-Age=3600", "sid=1", "warning"),
        ("sid=1", f"sid=1; Expires={HOUR_ON}", "warning"),
        ("sid=; Max-Age=0", "sid=1; Max-Age=3600", "error"),
        ("sid=1; Max-Age=3600", f"sid=; Expires={HOUR_AGO}", "error"),
        (f"sid=; Expires={EPOCH}", "sid=1", "error"),
    ],
    ids=[
        "persistent-to-session",
        "session-to-persistent",
        "logout-keeps-the-cookie",
        "cookie-deleted",
        "deleted-vs-session",
    ],
)
def test_a_lifetime_that_changes_what_the_browser_keeps_is_a_difference(
    baseline: str, candidate: str, severity: str
) -> None:
    assert cookies(baseline, candidate) == {("cookie", "sid", severity)}


def test_each_side_judges_expires_by_its_own_date() -> None:
    """The candidate's clock is a minute behind: its Expires a minute on is not in the past."""
    late = formatdate(DATE_S - 60, usegmt=True)
    found = compare_cookies(
        [f"sid=1; Expires={formatdate(DATE_S + 60, usegmt=True)}"],
        [f"sid=1; Expires={formatdate(DATE_S, usegmt=True)}"],
        parse_cookie_date(DATE),
        parse_cookie_date(late),
    )
    assert found == []


def test_the_difference_shows_the_lifetime_not_the_time() -> None:
    (found,) = compare_cookies(["sid=1; Max-Age=3600; Path=/"], ["sid=1; Path=/"], DATE_S, DATE_S)
    assert (found.baseline, found.candidate) == ("persistent; path=/", "session; path=/")


@given(
    st.integers(min_value=0, max_value=253_402_300_799),  # up to 9999-12-31 23:59:59
    st.integers(min_value=1, max_value=10**9),
)
def test_max_age_and_the_expires_it_stands_for_are_alike(now_s: int, delta_s: int) -> None:
    expires = formatdate(now_s + delta_s, usegmt=True) if now_s + delta_s < 253_402_300_800 else ""
    assert parse_cookie_date(formatdate(now_s, usegmt=True)) == now_s
    if expires:
        assert cookie_lifetime(f"a=1; Expires={expires}", now_s) == "persistent"
    assert cookie_lifetime(f"a=1; Max-Age={delta_s}", now_s) == "persistent"
    assert cookie_lifetime(f"a=1; Max-Age=-{delta_s}; Expires={expires}", now_s) == "deleted"


@given(st.text(max_size=200))
def test_any_set_cookie_has_a_lifetime(set_cookie: str) -> None:
    assert cookie_lifetime(set_cookie, DATE_S) in ("session", "persistent", "deleted")


def test_a_hostile_max_age_longer_than_int_takes_is_read() -> None:
    assert cookie_lifetime("a=1; Max-Age=" + "9" * 100_000, DATE_S) == "persistent"
    assert cookie_lifetime("a=1; Max-Age=" + "0" * 100_000, DATE_S) == "deleted"


async def test_real_answers_compare_cookie_lifetimes_by_meaning(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """Real aiohttp answers (each with its own Date): a lifetime spelled another way is no
    finding, a persistent cookie become a session cookie is a warning, a logout that no longer
    deletes the cookie an error."""

    def setting(side: str) -> Callable[[web.Request], web.Response]:
        def handle(request: web.Request) -> web.Response:
            response = web.Response(text="ok")
            persistent = (
                "Max-Age=3600" if side == "baseline" else "Expires=Fri, 31 Dec 2099 00:00:00 GMT"
            )
            if request.path == "/login":
                response.headers["Set-Cookie"] = f"sid={side}; {persistent}; Path=/; HttpOnly"
            elif request.path == "/remember":
                kept = "Max-Age=86400" if side == "baseline" else ""
                response.headers["Set-Cookie"] = f"pref=1; Path=/{'; ' + kept if kept else ''}"
            else:
                gone = f"Expires={EPOCH}" if side == "baseline" else "Max-Age=3600"
                response.headers["Set-Cookie"] = f"sid=; {gone}; Path=/; HttpOnly"
            return response

        return handle

    baseline = await start_entry_point(handler=setting("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=setting("candidate"))
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            """\
            requests:
              - {name: login, url: "http://app.example.com/login"}
              - {name: remember, url: "http://app.example.com/remember"}
              - {name: logout, url: "http://app.example.com/logout"}
            """,
        )
    )
    collector = RunCollector()
    await replay(scenario, collector)
    report = build_report(scenario, collector, started_at="t", duration_s=1.0)
    found = {
        entry["name"]: {(d["kind"], d["field"], d["severity"]) for d in entry["differences"]}
        for entry in report["requests"]
    }
    assert found == {
        "login": set(),
        "remember": {("cookie", "pref", "warning")},
        "logout": {("cookie", "sid", "error")},
    }
