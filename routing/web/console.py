"""The customer console (`/console`): balance and this month's spend against the budget, top-ups, API keys,
usage (by day, model and key, with the usage API's filters, and as CSV), billing history, webhooks with
their delivery log, and budgets. Every change is a form carrying the CSRF token; every read and change is
a use case of `datasources/`, the same ones the API calls."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from datasources import accounts, billing, budgets, signin, topups, usage, webhooks
from datasources.db.models import Account
from datasources.errors import BadInput, DomainError
from datasources.money import parse_amount
from routing.web.browser import check_csrf, page_data, render, signed_in
from routing.web.pages import money

FILTERS = ("period", "start", "end", "model", "key_id", "endpoint")
CSV_PAGE = 1000
CSV_MAX_ROWS = 100_000
NOTICES = {
    "key-revoked": "The key is revoked: requests with it are refused from now on.",
    "budget-saved": "Budget saved.",
    "budget-removed": "Budget removed.",
    "webhook-removed": "Webhook endpoint removed.",
    "webhook-sent": "The delivery is queued again.",
}


def _moment(raw: str | None, field: str) -> datetime | None:
    """A filter's time: a date (midnight UTC) or an ISO 8601 time; naive times are UTC."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"expected a date (YYYY-MM-DD) or an ISO 8601 time, got {text!r}", field=field) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def usage_filter(request: Request) -> tuple[usage.UsageFilter, dict[str, str]]:
    asked = {name: request.query_params[name].strip() for name in FILTERS if request.query_params.get(name, "").strip()}
    return (
        usage.UsageFilter(
            period=asked.get("period"),
            start=_moment(asked.get("start"), "start"),
            end=_moment(asked.get("end"), "end"),
            model=asked.get("model"),
            key_id=asked.get("key_id"),
            endpoint=asked.get("endpoint"),
        ),
        asked,
    )


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _overview(request: Request, session: AsyncSession, account: Account) -> dict[str, Any]:
    now = datetime.now(UTC)
    flt, asked = usage_filter(request)
    last_month = usage.UsageFilter(period="30d")  # what the page shows until a filter is asked for
    try:
        scope = await usage.resolve(session, account.id, flt if asked else last_month)
        usage_error = None
    except DomainError as exc:
        scope = await usage.resolve(session, account.id, last_month)
        usage_error = exc.describe()
    month = usage.Scope(account.id, _month_start(now), None)
    budget_rows = await budgets.list_budgets(session, account.id)
    account_budget = next((b for b in budget_rows if b.scope == budgets.ACCOUNT_SCOPE), None)
    spent = (await usage.totals(session, month)).cost
    by_day = (await usage.by_day(session, scope, limit=90)).items
    by_model = (await usage.by_model(session, scope, limit=20)).items
    by_key = (await usage.by_key(session, scope, limit=20)).items
    endpoints = await webhooks.list_endpoints(session, account.id)
    deliveries = {e.id: await webhooks.deliveries(session, account.id, e.id, limit=10) for e in endpoints}
    cap = account_budget.monthly_cap if account_budget is not None else None
    return {
        "account": account,
        "balance": await billing.balance(session, account.id),
        "spent": spent,
        "cap": cap,
        "spent_pct": min(100, int(spent * 100 / cap)) if cap else None,
        "keys": await accounts.list_keys(session, account.id),
        "totals": await usage.totals(session, scope),
        "by_model": by_model,
        "by_key": by_key,
        "most_model": max((g.totals.cost for g in by_model), default=0),
        "most_key": max((g.totals.cost for g in by_key), default=0),
        "asked": asked,
        "usage_error": usage_error,
        "csv_query": "&".join(f"{k}={v}" for k, v in asked.items()),
        "history": (await billing.billing_history(session, account.id, limit=25)).items,
        "budgets": budget_rows,
        "spent_of": budgets.spent_this_period,
        "endpoints": endpoints,
        "deliveries": deliveries,
        "event_types": webhooks.EVENT_TYPES,
        "topups": request.app.state.polar is not None,
        "money": money,
        "usage_data": page_data(
            [{"day": g.key.isoformat(), "cost": money(g.totals.cost), "requests": g.totals.requests} for g in by_day]
        ),
    }


async def _account(request: Request) -> Account | None:
    web_session = await signed_in(request)
    if web_session is None:
        return None
    async with request.app.state.sessionmaker() as session:
        found: Account | None = await session.get(Account, web_session.account_id)
        return found


async def page(request: Request, account: Account, status: int = 200, **extra: Any) -> Response:
    await request.app.state.recorder.caught_up(account.id)
    async with request.app.state.sessionmaker() as session:
        context = await _overview(request, session, account)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, "console.html", {**context, "notice": notice, **extra}, status=status, private=True)


def _to_sign_in() -> Response:
    return RedirectResponse("/signin", status_code=303)


async def console(request: Request) -> Response:
    account = await _account(request)
    if account is None:
        return _to_sign_in()
    return await page(request, account)


async def _form(request: Request) -> tuple[Account | None, FormData]:
    form = await request.form()
    check_csrf(request, form)
    return await _account(request), form


def _field(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


async def _act(request: Request, action: str) -> Response:
    """A console form: checked (CSRF, signed in), done in one transaction, then the page again."""
    try:
        account, form = await _form(request)
    except DomainError as exc:
        return render(request, "refused.html", {"error": exc.describe()}, status=exc.status, private=True)
    if account is None:
        return _to_sign_in()
    broker = request.app.state.broker
    try:
        async with request.app.state.sessionmaker() as session, session.begin():
            if action == "create-key":
                name = _field(form, "name")
                if len(name) > 200:
                    raise BadInput("at most 200 characters", field="name")
                issued = await accounts.create_key(session, account.id, name, broker)
                created = {"created_key": {"id": issued.key.id, "name": name, "secret": issued.secret}}
            elif action == "revoke-key":
                await accounts.revoke_key(session, request.path_params["key_id"], account.id, broker)
                return RedirectResponse("/console?notice=key-revoked#keys", status_code=303)
            elif action == "topup":
                amount = parse_amount(_field(form, "amount"), "amount")
                checkout = await topups.checkout(session, request.app.state.polar, account.id, amount)
                return RedirectResponse(checkout.url, status_code=303)
            elif action == "set-budget":
                key_id = _field(form, "key_id") or None
                await budgets.set_budget(
                    session,
                    account.id,
                    _field(form, "monthly_cap"),
                    key_id,
                    _field(form, "thresholds") or None,
                    broker,
                )
                return RedirectResponse("/console?notice=budget-saved#budgets", status_code=303)
            elif action == "remove-budget":
                await budgets.remove_budget(session, account.id, _field(form, "key_id") or None, broker)
                return RedirectResponse("/console?notice=budget-removed#budgets", status_code=303)
            elif action == "create-webhook":
                made = await webhooks.create(
                    session,
                    account.id,
                    _field(form, "url"),
                    request.app.state.sealer,
                    events=[str(e) for e in form.getlist("events")],
                    description=_field(form, "description"),
                )
                created = {"created_webhook": {"id": made.endpoint.id, "url": made.endpoint.url, "secret": made.secret}}
            elif action == "remove-webhook":
                await webhooks.remove(session, account.id, request.path_params["endpoint_id"])
                return RedirectResponse("/console?notice=webhook-removed#webhooks", status_code=303)
            elif action == "sign-out-everywhere":
                await signin.sign_out_everywhere(session, account.id)
                return RedirectResponse("/signin", status_code=303)
            elif action == "resend":
                message = form.get("message_id")
                if not str(message or "").isdigit():
                    raise BadInput("expected a delivery's id", field="message_id")
                await webhooks.send_again(session, account.id, request.path_params["endpoint_id"], int(str(message)))
                return RedirectResponse("/console?notice=webhook-sent#webhooks", status_code=303)
            else:  # pragma: no cover - the routes name every action
                raise BadInput(f"unknown action {action}")
    except DomainError as exc:
        return await page(request, account, status=exc.status, error=exc.describe())
    if action == "resend":
        request.app.state.outbox.wake()
    return await page(request, account, status=201, **created)


def action(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _act(request, name)

    endpoint.__name__ = name.replace("-", "_")
    return endpoint


async def usage_csv(request: Request) -> Response:
    """Every request of the filter, newest first, as CSV (at most 100,000 rows)."""
    account = await _account(request)
    if account is None:
        return _to_sign_in()
    await request.app.state.recorder.caught_up(account.id)
    try:
        flt, _ = usage_filter(request)
        async with request.app.state.sessionmaker() as session:
            scope = await usage.resolve(session, account.id, flt)
    except DomainError as exc:
        return render(request, "refused.html", {"error": exc.describe()}, status=exc.status, private=True)
    sessionmaker = request.app.state.sessionmaker

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(
            [
                "id",
                "created_at",
                "model",
                "provider",
                "variant",
                "endpoint",
                "key_id",
                "status",
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "reasoning_tokens",
                "cost_usd",
                "latency_ms",
                "request_id",
            ]
        )
        after: int | None = None
        sent = 0
        while sent < CSV_MAX_ROWS:
            async with sessionmaker() as session:
                found = await usage.logs(session, scope, CSV_PAGE, after)
            for r in found.items:
                out.writerow(
                    [
                        f"{usage.USAGE_ID}{r.id}",
                        r.created_at.astimezone(UTC).isoformat(),
                        r.model_slug,
                        r.provider_slug or "",
                        r.variant or "",
                        r.endpoint,
                        r.api_key_id or "",
                        r.status,
                        r.prompt_tokens,
                        r.completion_tokens,
                        r.cache_read_tokens,
                        r.reasoning_tokens,
                        format(r.cost, "f"),
                        "" if r.latency_ms is None else r.latency_ms,
                        r.request_id or "",
                    ]
                )
            sent += len(found.items)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not found.has_more or not found.items:
                break
            after = found.items[-1].id

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="usage-{stamp}.csv"', "Cache-Control": "no-store"},
    )
