"""The plan table: what each plan may use and how many requests it gets. Every surface reads this."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from datasources.db.models import Plan
from datasources.errors import PlanRequired


class Feature(enum.StrEnum):
    PRICES = "prices"
    PROVIDERS = "providers"
    MODELS = "models"
    HISTORY = "history"
    HOURLY_CANDLES = "hourly candles"
    COMPARE = "compare"
    ROUTING = "routing"
    WEBHOOKS = "webhooks"


class Window(enum.StrEnum):
    ROLLING_DAY = "rolling 24 h"
    CALENDAR_MONTH = "calendar month"


@dataclass(frozen=True)
class PlanRules:
    plan: Plan
    requests: int | None  # None: unlimited
    window: Window
    features: frozenset[Feature]
    max_history_days: int
    query_cost: int  # the most values one GraphQL answer may hold, estimated before it runs


MAX_HISTORY_DAYS = 365  # the longest window any plan sees, and the longest candles cover

_FREE = frozenset({Feature.PRICES, Feature.PROVIDERS, Feature.MODELS})
_DEVELOPER = _FREE | {Feature.HISTORY, Feature.ROUTING}
_TEAM = _DEVELOPER | {Feature.COMPARE, Feature.HOURLY_CANDLES, Feature.WEBHOOKS}

RULES: dict[Plan, PlanRules] = {
    Plan.FREE: PlanRules(Plan.FREE, 100, Window.ROLLING_DAY, _FREE, 0, 50_000),
    Plan.DEVELOPER: PlanRules(Plan.DEVELOPER, 10_000, Window.CALENDAR_MONTH, _DEVELOPER, 30, 500_000),
    Plan.TEAM: PlanRules(Plan.TEAM, 100_000, Window.CALENDAR_MONTH, _TEAM, MAX_HISTORY_DAYS, 1_000_000),
    Plan.ENTERPRISE: PlanRules(
        Plan.ENTERPRISE, None, Window.CALENDAR_MONTH, frozenset(Feature), MAX_HISTORY_DAYS, 1_000_000
    ),
}


def cheapest_plan_with(feature: Feature) -> Plan:
    return next(plan for plan, rules in RULES.items() if feature in rules.features)


def cheapest_plan_for_days(days: int) -> Plan:
    return next(plan for plan, rules in RULES.items() if rules.max_history_days >= days)


def require(rules: PlanRules, feature: Feature, history_days: int | None = None) -> None:
    """Raise PlanRequired when the plan does not include the feature (or that much history)."""
    if feature not in rules.features:
        needed = cheapest_plan_with(feature)
        raise PlanRequired(f"{feature.value} requires the {needed.value} plan or higher")
    if history_days is not None and history_days > rules.max_history_days:
        needed = cheapest_plan_for_days(history_days)
        raise PlanRequired(
            f"{history_days} days of history requires the {needed.value} plan or higher "
            f"(the {rules.plan.value} plan allows {rules.max_history_days})"
        )
