"""Signing in to the console and what the console's forms do, over real HTTP (httpx) against a real server,
with e-mails read from a real SMTP server: one-time links (single use, expiry, forgery), the hourly limits
per e-mail and per address, cookies, CSRF, signing out (here and everywhere), the top-up button opening a
(fake) Polar checkout, budgets, webhooks, and the usage CSV matching the usage API."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import URL

from datasources import accounts, polar, signin
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan, UsageRecord
from datasources.errors import QuotaExceeded, Unauthenticated
from datasources.mail import SmtpConfig
from datasources.secrets import Sealer
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, free_port, wait_until
from tests.fake_polar import FakePolar
from tests.test_account_mail import Inbox, parts

OWNER = "owner@example.test"
SECRET = "web-tests-secret"
LINK = re.compile(r"https?://\S+/signin/verify\?token=([\w.\-]+)")


@dataclass
class Service:
    url: str
    db: URL
    inbox: Inbox
    account_id: int
    key: str
    polar: FakePolar


async def _account(url: URL) -> tuple[int, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            account, issued = await accounts.create_account(session, Plan.TEAM, Decimal(10), "Acme", email=OWNER)
            for day, cost in ((2, "0.25"), (1, "0.5"), (0, "0.125")):
                session.add(
                    UsageRecord(
                        account_id=account.id,
                        api_key_id=issued.key.id,
                        model_slug="gpt-4o-mini",
                        provider_slug="openai",
                        endpoint="/v1/chat/completions",
                        prompt_tokens=100,
                        completion_tokens=20,
                        cost=Decimal(cost),
                        status=200,
                        created_at=datetime.now(UTC) - timedelta(days=day, minutes=5),
                        request_id=f"req_{day}",
                    )
                )
    finally:
        await engine.dispose()
    return account.id, issued.secret


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    url = asyncio.run(Databases("sqlite", tmp_path).migrated())
    account_id, key = asyncio.run(_account(url))
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with FakePolar() as fake:
            settings = Settings(
                database_url=url,
                migrate_on_start=False,
                seed_on_start=False,
                secret_key=SECRET,
                smtp=SmtpConfig.parse(f"smtp://127.0.0.1:{port}?from=console@pricegraph.test"),
                outbox_retry=(0.05,),
                outbox_poll_seconds=0.05,
                polar=polar.PolarConfig(
                    access_token=fake.token, product_id="prod_topup", webhook_secret="whsec_dGVzdA==", base_url=fake.url
                ),
                sign_in=signin.SignInPolicy(per_email=3, per_address=5),
            )
            with LiveServer(create_app(settings)) as server:
                yield Service(server.url, url, inbox, account_id, key, fake)
    finally:
        smtp.stop()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def ask(client: httpx.Client, email: str, forwarded: str | None = None) -> httpx.Response:
    token = csrf_of(client.get("/signin").text)
    return client.post("/signin", data={"email": email, "csrf_token": token})


def link_from(inbox: Inbox, after: int) -> str:
    def found() -> str | None:
        for message in inbox.messages[after:]:
            match = LINK.search(parts(message)[0])
            if match:
                return match.group(1)
        return None

    return wait_until(found, what="the sign-in e-mail")


def signed_in(service: Service, client: httpx.Client) -> None:
    count = len(service.inbox.messages)
    assert ask(client, OWNER).status_code == 200
    token = link_from(service.inbox, count)
    confirm = client.get(f"/signin/verify?token={token}")
    assert confirm.status_code == 200 and confirm.headers["cache-control"] == "no-store"
    used = client.post("/signin/verify", data={"token": token, "csrf_token": csrf_of(confirm.text)})
    assert used.status_code == 303 and used.headers["location"] == "/console"


def test_a_link_signs_in_once_and_sets_a_safe_cookie(service: Service) -> None:
    client = httpx.Client(base_url=service.url)
    assert client.get("/console").headers["location"] == "/signin"
    count = len(service.inbox.messages)
    assert ask(client, OWNER).status_code == 200
    token = link_from(service.inbox, count)
    form = {"token": token, "csrf_token": csrf_of(client.get(f"/signin/verify?token={token}").text)}
    used = client.post("/signin/verify", data=form)
    assert used.status_code == 303
    cookie = used.headers["set-cookie"]
    assert "pricegraph_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # reached on 127.0.0.1
    page = client.get("/console")
    assert page.status_code == 200 and "Acme" in page.text and page.headers["cache-control"] == "no-store"
    again = httpx.Client(base_url=service.url)
    replay = again.post(
        "/signin/verify", data={"token": token, "csrf_token": csrf_of(again.get(f"/signin/verify?token={token}").text)}
    )
    assert replay.status_code == 401 and "used already" in replay.text
    assert "pricegraph_session" not in replay.headers.get("set-cookie", "")


def test_forged_and_expired_links_are_refused() -> None:
    sealer = Sealer.from_passphrase(SECRET)
    assert not sealer.verify("abc", sealer.sign("abd", signin.LINK_PURPOSE), signin.LINK_PURPOSE)
    assert not sealer.verify("abc", sealer.sign("abc", "form"), signin.LINK_PURPOSE)
    assert Sealer.from_passphrase("other").sign("abc", "x") != sealer.sign("abc", "x")


def test_links_expire_and_a_tampered_link_is_refused(service: Service) -> None:
    async def scenario() -> None:
        engine = create_engine(service.db)
        sessions = sessionmaker(engine)
        sealer = Sealer.from_passphrase(SECRET)
        policy = signin.SignInPolicy(link_minutes=15)
        device = signin.device_of("Mozilla/5.0 Firefox/140.0", "10.1.2.3")
        then = datetime.now(UTC) - timedelta(minutes=16)
        count = len(service.inbox.messages)
        try:
            async with sessions() as session, session.begin():
                assert await signin.request_link(session, sealer, OWNER, "10.1.2.3", service.url, policy, then)
            token = await asyncio.to_thread(link_from, service.inbox, count)
            async with sessions() as session:
                with pytest.raises(Unauthenticated, match="expired"):
                    await signin.sign_in(session, sealer, token, device, policy)
                random, _, signature = token.partition(".")
                for forged in (f"{random}x.{signature}", f"{random}.{signature[:-2]}AA", random, ""):
                    with pytest.raises(Unauthenticated, match="not valid"):
                        await signin.sign_in(session, sealer, forged, device, policy)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_sign_in_links_are_limited_per_email_and_per_address_and_say_nothing_of_unknown_addresses(
    service: Service,
) -> None:
    client = httpx.Client(base_url=service.url)
    count = len(service.inbox.messages)
    for _ in range(3):
        assert ask(client, "nobody@example.test").status_code == 200
    refused = ask(client, "nobody@example.test")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "too many sign-in links" in refused.text
    assert ask(client, OWNER).status_code == 200  # another e-mail: still allowed from this address
    assert ask(client, "someone@example.test").status_code == 200
    by_address = ask(client, "third@example.test")  # the sixth request from 127.0.0.1 this hour
    assert by_address.status_code == 429 and "this address" in by_address.text
    wait_until(lambda: len(service.inbox.messages) > count, what="the owner's link")
    assert [m["to"] for m in service.inbox.messages[count:]] == [OWNER]  # none for the unknown addresses
    malformed = ask(client, "not an address")
    assert malformed.status_code == 400 and "not an e-mail address" in malformed.text


def test_limits_count_across_processes_in_the_database(service: Service) -> None:
    async def scenario() -> None:
        engine = create_engine(service.db)
        sealer = Sealer.from_passphrase(SECRET)
        policy = signin.SignInPolicy(per_email=2, per_address=100)
        try:
            for n in range(2):
                async with sessionmaker(engine)() as session, session.begin():
                    await signin.request_link(session, sealer, f"Limit{n % 1}@Example.test", f"10.0.0.{n}", "", policy)
            async with sessionmaker(engine)() as session:
                with pytest.raises(QuotaExceeded):
                    await signin.request_link(session, sealer, "limit0@example.test", "10.0.0.9", "", policy)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_console_forms_need_the_token_and_the_same_origin(service: Service) -> None:
    client = httpx.Client(base_url=service.url)
    signed_in(service, client)
    token = csrf_of(client.get("/console").text)
    assert client.post("/console/keys", data={"name": "x"}).status_code == 403
    assert client.post("/console/keys", data={"name": "x", "csrf_token": token + "x"}).status_code == 403
    elsewhere = client.post(
        "/console/keys", data={"name": "x", "csrf_token": token}, headers={"origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    other = httpx.Client(base_url=service.url)  # another browser's token does not fit this browser's cookie
    other_token = csrf_of(other.get("/signin").text)
    assert client.post("/console/keys", data={"name": "x", "csrf_token": other_token}).status_code == 403
    made = client.post("/console/keys", data={"name": "ok", "csrf_token": token}, headers={"origin": service.url})
    secret = re.search(r'id="new-key-secret">(cxm_[^<]+)<', made.text)
    assert made.status_code == 201 and secret is not None
    assert httpx.get(f"{service.url}/v1/me", headers={"authorization": f"Bearer {secret.group(1)}"}).status_code == 200
    listing = client.get("/console").text
    assert listing.count('data-key="') == 2 and secret.group(1) not in listing  # two keys; the secret shown once


def test_sign_out_here_and_everywhere(service: Service) -> None:
    first, second = httpx.Client(base_url=service.url), httpx.Client(base_url=service.url)
    signed_in(service, first)
    signed_in(service, second)
    token = csrf_of(first.get("/console").text)
    assert first.post("/signout", data={"csrf_token": token}).status_code == 303
    assert first.get("/console").status_code == 303
    assert second.get("/console").status_code == 200
    third = httpx.Client(base_url=service.url)
    signed_in(service, third)
    gone = second.post("/console/sign-out-everywhere", data={"csrf_token": csrf_of(second.get("/console").text)})
    assert gone.status_code == 303
    assert second.get("/console").status_code == 303 and third.get("/console").status_code == 303


def test_top_up_opens_the_checkout_and_budgets_and_webhooks_are_kept(service: Service) -> None:
    client = httpx.Client(base_url=service.url)
    signed_in(service, client)
    token = csrf_of(client.get("/console").text)
    topup = client.post("/console/topup", data={"amount": "25", "csrf_token": token})
    assert topup.status_code == 303 and topup.headers["location"].startswith(service.polar.url + "/checkout/")
    bad = client.post("/console/topup", data={"amount": "-3", "csrf_token": token})
    assert bad.status_code == 400 and "amount" in bad.text
    saved = client.post("/console/budgets", data={"monthly_cap": "50", "thresholds": "50,90", "csrf_token": token})
    assert saved.status_code == 303
    page = client.get(saved.headers["location"]).text
    assert "Budget saved" in page and "$50" in page and "of a $50 budget" in page
    refused = client.post("/console/budgets", data={"monthly_cap": "lots", "csrf_token": token})
    assert refused.status_code == 400 and "monthly_cap" in refused.text
    hook = client.post(
        "/console/webhooks",
        data={"url": "https://hooks.example.test/in", "events": ["price.changed", "key.created"], "csrf_token": token},
    )
    assert hook.status_code == 201 and "whsec_" in hook.text and "https://hooks.example.test/in" in hook.text
    api = httpx.get(f"{service.url}/v1/webhooks", headers={"authorization": f"Bearer {service.key}"}).json()
    assert [e["url"] for e in api["data"]] == ["https://hooks.example.test/in"]
    assert sorted(api["data"][0]["events"]) == ["key.created", "price.changed"]


def _rows(text: str) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_usage_csv_matches_the_usage_api_with_the_same_filters(service: Service) -> None:
    client = httpx.Client(base_url=service.url)
    signed_in(service, client)
    api = httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {service.key}"})
    for query in ({}, {"period": "24h"}, {"model": "gpt-4o-mini"}):
        exported = client.get("/console/usage.csv", params=query)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = _rows(exported.text)
        logs = api.get("/v1/usage/logs", params={**query, "limit": 100}).json()["data"]
        assert [r["id"] for r in rows] == [log["id"] for log in logs]
        assert sum(Decimal(r["cost_usd"]) for r in rows) == sum(Decimal(str(log["cost"])) for log in logs)
    assert len(_rows(client.get("/console/usage.csv").text)) == 3
    bad = client.get("/console/usage.csv", params={"start": "yesterday"})
    assert bad.status_code == 400 and "start" in bad.text
    page = client.get("/console", params={"period": "7d"}).text
    assert "3 requests" in page and "$0.875" in page


def test_pages_answer_clearly(service: Service) -> None:
    client = httpx.Client(base_url=service.url)
    missing = client.get("/models/no-such-model")
    assert missing.status_code == 404 and "no-such-model" in missing.text
    board = client.get("/", headers={"accept-encoding": "gzip"})
    assert board.status_code == 200 and board.headers["content-security-policy"].startswith("default-src 'self'")
    assert board.headers["x-frame-options"] == "DENY"
    ide = client.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 200 and "/static/vendor/graphiql/graphiql.min.js" in ide.text
    assert "unpkg.com" not in ide.text and "cdn" not in ide.text.lower()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', ide.text):
        assert client.get(asset).status_code == 200, asset
    licence = client.get("/static/vendor/lightweight-charts/LICENSE")
    assert licence.status_code == 200 and "Apache License" in licence.text


def test_the_cookie_is_secure_when_the_service_is_not_on_localhost(service: Service) -> None:
    client = httpx.Client(base_url=service.url, headers={"host": "console.example.test"})
    page = client.get("/signin")
    assert "Secure" in page.headers["set-cookie"]
