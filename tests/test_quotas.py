from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from datasources import quotas
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from datasources.errors import PlanRequired, QuotaExceeded
from datasources.plans import RULES, Feature, PlanRules, Window, require
from tests.conftest import await_until

T0 = datetime(2026, 5, 12, 14, 32, tzinfo=UTC)
SMALL_DAY = PlanRules(Plan.FREE, 3, Window.ROLLING_DAY, frozenset(), 0, 1000)
SMALL_MONTH = PlanRules(Plan.DEVELOPER, 2, Window.CALENDAR_MONTH, frozenset(), 30, 1000)


async def _admit(sessions, subject: str, rules: PlanRules, now: datetime) -> quotas.Admission:  # type: ignore[no-untyped-def]
    book = quotas.QuotaBook(sessions)
    try:
        return await book.admit(subject, rules, now)
    finally:
        await book.stop()  # what it leased and did not spend goes back


async def test_rolling_day_counts_the_last_24_hours(sessions) -> None:  # type: ignore[no-untyped-def]
    first = await _admit(sessions, "ip:a", SMALL_DAY, T0)
    assert (first.limit, first.remaining) == (3, 2)
    await _admit(sessions, "ip:a", SMALL_DAY, T0 + timedelta(hours=5))
    await _admit(sessions, "ip:a", SMALL_DAY, T0 + timedelta(hours=6))
    with pytest.raises(QuotaExceeded) as refused:
        await _admit(sessions, "ip:a", SMALL_DAY, T0 + timedelta(hours=7))
    # The oldest request (in the 14:00 hour) leaves the window at 14:00 the next day.
    expected_reset = T0.replace(minute=0) + timedelta(hours=24)
    assert refused.value.reset_at == int(expected_reset.timestamp())
    assert refused.value.retry_after == int((expected_reset - (T0 + timedelta(hours=7))).total_seconds())
    # Refusals use no quota: once the first hour has left the window, exactly one more fits.
    later = T0.replace(minute=0) + timedelta(hours=24, minutes=1)
    assert (await _admit(sessions, "ip:a", SMALL_DAY, later)).remaining == 0
    with pytest.raises(QuotaExceeded):
        await _admit(sessions, "ip:a", SMALL_DAY, later)
    assert (await _admit(sessions, "ip:b", SMALL_DAY, later)).remaining == 2  # other subjects are apart


async def test_calendar_month_resets_on_the_first(sessions) -> None:  # type: ignore[no-untyped-def]
    december = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    await _admit(sessions, "account:1", SMALL_MONTH, december)
    await _admit(sessions, "account:1", SMALL_MONTH, december)
    with pytest.raises(QuotaExceeded) as refused:
        await _admit(sessions, "account:1", SMALL_MONTH, december)
    assert refused.value.retry_after == 3600
    assert refused.value.reset_at == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert (await _admit(sessions, "account:1", SMALL_MONTH, datetime(2027, 1, 1, 0, 1, tzinfo=UTC))).remaining == 1


async def test_enterprise_is_not_counted(sessions) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        assert await _admit(sessions, "account:9", RULES[Plan.ENTERPRISE], T0) == quotas.UNLIMITED


async def _burst(books: list[quotas.QuotaBook], subject: str, rules: PlanRules, count: int) -> list[bool]:
    async def one(i: int) -> bool:
        try:
            await books[i % len(books)].admit(subject, rules)
            return True
        except QuotaExceeded:
            return False

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_concurrent_requests_admit_exactly_the_limit(sessions) -> None:  # type: ignore[no-untyped-def]
    book = quotas.QuotaBook(sessions)
    results = await _burst([book], "ip:c", PlanRules(Plan.FREE, 20, Window.ROLLING_DAY, frozenset(), 0, 1000), 35)
    await book.stop()
    assert results.count(True) == 20


async def test_two_processes_share_a_quota_exactly_in_few_round_trips(db_url) -> None:  # type: ignore[no-untyped-def]
    """Two books on two engines stand for two processes: the plan is never exceeded, a burst spends it
    to the last request, and each book asks the database far less often than once a request."""
    engines = [create_engine(db_url) for _ in range(2)]
    books = [quotas.QuotaBook(sessionmaker(e)) for e in engines]
    rules = PlanRules(Plan.DEVELOPER, 1000, Window.CALENDAR_MONTH, frozenset(), 30, 1000)
    try:
        results = await _burst(books, "account:7", rules, 1500)
        assert results.count(True) == 1000
        assert sum(b.round_trips for b in books) < 1000 / 4
    finally:
        for book in books:
            await book.stop()
        for engine in engines:
            await engine.dispose()


async def test_what_one_process_leased_and_left_goes_back_for_the_other(db_url) -> None:  # type: ignore[no-untyped-def]
    engines = [create_engine(db_url) for _ in range(2)]
    first, second = (quotas.QuotaBook(sessionmaker(e), idle_seconds=0.2) for e in engines)
    rules = PlanRules(Plan.DEVELOPER, 1000, Window.CALENDAR_MONTH, frozenset(), 30, 1000)
    try:
        await first.start()
        await first.admit("account:8", rules)  # leases a block, spends one of it
        assert first.leases["account:8"].tokens > 0
        await await_until(lambda: "account:8" not in first.leases, what="the idle lease goes back")
        granted = await _burst([second], "account:8", rules, 1000)
        assert granted.count(True) == 999
    finally:
        await first.stop()
        await second.stop()
        for engine in engines:
            await engine.dispose()


def test_the_plan_table_gates_features_and_history() -> None:
    require(RULES[Plan.FREE], Feature.PRICES)
    with pytest.raises(PlanRequired, match="history requires the developer plan"):
        require(RULES[Plan.FREE], Feature.HISTORY)
    require(RULES[Plan.DEVELOPER], Feature.HISTORY, history_days=30)
    with pytest.raises(PlanRequired, match="31 days of history requires the team plan"):
        require(RULES[Plan.DEVELOPER], Feature.HISTORY, history_days=31)
    with pytest.raises(PlanRequired, match="compare requires the team plan"):
        require(RULES[Plan.DEVELOPER], Feature.COMPARE)
    require(RULES[Plan.TEAM], Feature.HOURLY_CANDLES, history_days=365)
    require(RULES[Plan.ENTERPRISE], Feature.WEBHOOKS)
