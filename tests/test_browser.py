"""The pages in a real headless Chromium (Debian's `chromium`, driven by Playwright), against a real server
on 127.0.0.1 with a real SMTP server (aiosmtpd) beside it: the live board, a model page's candles, signing
in by e-mailed link and managing keys in the console, CSRF refusals, and GraphiQL, with no request leaving
127.0.0.1 and no console error.

Without a Chromium these tests are skipped, unless PRICEGRAPH_BROWSER_TESTS=required (as in CI), when they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiosmtpd.controller import Controller

from datasources import accounts
from datasources.callers import OperatorToken
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from datasources.mail import SmtpConfig
from datasources.signin import SignInPolicy
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, free_port, pg_server_url, wait_until
from tests.test_account_mail import Inbox, parts

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("PRICEGRAPH_BROWSER_TESTS") == "required"
ADMIN = "browser-tests-admin-token"
OWNER = "owner@example.test"

if CHROMIUM is None and REQUIRED:
    raise RuntimeError("PRICEGRAPH_BROWSER_TESTS=required, but no chromium is installed (apt install chromium)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt install chromium)")


@dataclass
class Site:
    url: str
    inbox: Inbox
    owner_key: str
    host: str = field(init=False)

    def __post_init__(self) -> None:
        self.host = urlparse(self.url).netloc

    def graphql(self, query: str, variables: dict[str, Any] | None = None, token: str = ADMIN) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert "errors" not in answer, answer
        data: dict[str, Any] = answer["data"]
        return data

    def record(self, model: str, provider: str, input_per_1m: str, output_per_1m: str, variant: str = "") -> None:
        price = {
            "model": model,
            "provider": provider,
            "variant": variant,
            "inputPer1m": input_per_1m,
            "outputPer1m": output_per_1m,
        }
        self.graphql("mutation($p: [PriceInput!]!) { recordPrices(prices: $p) { ticks { model } } }", {"p": [price]})


async def _prepared(databases: Databases) -> tuple[Any, str]:
    url = await databases.migrated(seeded=True)
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            _, issued = await accounts.create_account(session, Plan.TEAM, Decimal(25), name="Acme", email=OWNER)
    finally:
        await engine.dispose()
    return url, issued.secret


@pytest.fixture(scope="module")
def site(databases_by_backend: dict[str, Databases]) -> Iterator[Site]:
    backend = "postgresql" if pg_server_url() else "sqlite"
    url, owner_key = asyncio.run(_prepared(databases_by_backend[backend]))
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = Settings(
        database_url=url,
        migrate_on_start=False,
        seed_on_start=False,
        secret_key="browser-tests-secret",
        operator=OperatorToken(ADMIN),
        smtp=SmtpConfig.parse(f"smtp://127.0.0.1:{port}?from=console@pricegraph.test"),
        outbox_retry=(0.05,),
        outbox_poll_seconds=0.05,
        sign_in=SignInPolicy(per_email=100, per_address=100),  # these tests sign in often (limits: elsewhere)
    )
    try:
        with LiveServer(create_app(settings)) as server:
            yield Site(server.url, inbox, owner_key)
    finally:
        smtp.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class Watched:
    page: Any
    errors: list[str] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A page in a fresh browser context, its console errors and the hosts it asked collected."""
    context = browser.new_context()
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("request", lambda r: seen.hosts.add(urlparse(r.url).netloc))
    yield seen
    context.close()


def _offline(seen: Watched, site: Site) -> None:
    assert seen.errors == []
    assert seen.hosts == {site.host}, seen.hosts


def _drawn(page: Any) -> list[dict[str, Any]]:
    """Each chart on a model page: its offer and how many candles it draws."""
    charts: list[dict[str, Any]] = page.evaluate(
        """() => Object.values(window.pricegraphCharts).map(c =>
             ({provider: c.offer.provider, variant: c.offer.variant, bars: c.series.data().length}))"""
    )
    return charts


def _row(page: Any, model: str) -> Any:
    return page.locator(f'#board tr[data-model="{model}"]')


def test_board_loads_with_no_error_and_shows_a_recorded_price_within_two_seconds(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(site.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=5000)
    rows = page.locator("#board tbody tr")
    assert rows.count() > 100
    row = _row(page, "llama-3.3-70b")
    expect(row).to_have_count(1)
    before = row.locator("td.price").text_content()
    assert before and Decimal(before) > Decimal("0.001")
    # A new cheapest offer: below every current price.
    site.record("llama-3.3-70b", "groq", "0.0101", "0.0203")
    expect(row.locator("td.price")).to_have_text("0.0152", timeout=2000)
    expect(row.locator("td.provider")).to_contain_text("groq")
    expect(row).to_have_class(re.compile(r"flash-down"))
    expect(row.locator("td.move")).to_contain_text("just now")
    # A free price is marked and never shown as the cheapest: the next-cheapest offer is.
    site.record("llama-3.3-70b", "groq", "0", "0")
    expect(row.locator("td.price")).to_have_text(before, timeout=2000)
    # Filters and sorting happen in the page.
    page.fill("#search", "llama-3.3")
    assert 0 < page.locator("#board tbody tr:not([hidden])").count() < rows.count()
    page.fill("#search", "")
    page.select_option("#sort", "price")
    prices = [p for p in page.eval_on_selector_all("#board tbody tr", "rs => rs.map(r => r.dataset.price)") if p]
    assert [Decimal(p) for p in prices] == sorted(Decimal(p) for p in prices)
    _offline(watched, site)


def test_a_model_with_no_priced_offer_is_marked_and_has_no_cheapest_price(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    site.record("pricegraph-zero-test", "groq", "0", "0")
    kind = site.graphql('{ model(slug: "pricegraph-zero-test") { offers { priceKind } } }')["model"]["offers"][0]
    assert kind["priceKind"] in ("FREE", "UNPRICED")
    page = watched.page
    page.goto(site.url + "/")
    row = _row(page, "pricegraph-zero-test")
    expect(row.locator("td.price .tag")).to_have_text(kind["priceKind"].lower())
    assert row.get_attribute("data-price") == ""
    _offline(watched, site)


def test_a_model_first_priced_while_the_board_is_open_gets_a_row(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(site.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=5000)
    expect(_row(page, "pricegraph-new-test")).to_have_count(0)
    site.record("pricegraph-new-test", "groq", "1", "3")
    row = _row(page, "pricegraph-new-test")
    expect(row.locator("td.price")).to_have_text("2", timeout=2000)
    expect(row.locator("td.providers")).to_have_text("1")
    expect(row.locator("a")).to_have_attribute("href", "/models/pricegraph-new-test")
    site.record("pricegraph-new-test", "groq", "2", "6")  # doubled
    expect(row.locator("td.move")).to_contain_text("▲ 100%", timeout=2000)
    page.reload()  # drawn by the server now, its last move included
    row = _row(page, "pricegraph-new-test")
    expect(row.locator("td.price")).to_have_text("4")
    expect(row.locator("td.move")).to_contain_text("▲ 100%")
    _offline(watched, site)


def test_hourly_candles_on_the_model_page(site: Site, watched: Watched) -> None:
    model = "claude-3-5-haiku"
    page = watched.page
    page.goto(f"{site.url}/models/{model}?interval=hour")
    drawn = _drawn(page)
    assert drawn
    for chart in drawn:
        expected = site.graphql(
            "query($m: String!, $p: String!, $v: String) "
            "{ candles(model: $m, provider: $p, variant: $v, days: 3, interval: HOUR) { open } }",
            {"m": model, "p": chart["provider"], "v": chart["variant"]},
        )["candles"]
        assert expected and chart["bars"] == len(expected), chart
    assert page.locator('.intervals a[aria-current="page"]').text_content() == "Hourly"
    _offline(watched, site)


def test_model_page_draws_each_offers_candles_and_the_live_candle_moves(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    model = "gpt-4o-mini"
    data = site.graphql("query($m: String!) { model(slug: $m) { offers { provider { slug } variant } } }", {"m": model})
    offers = data["model"]["offers"]
    assert offers
    page = watched.page
    page.goto(f"{site.url}/models/{model}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=5000)
    assert page.locator("#offers tbody tr").count() == len(offers)
    drawn = _drawn(page)
    assert len(drawn) == len(offers)
    for chart in drawn:
        expected = site.graphql(
            "query($m: String!, $p: String!, $v: String) "
            "{ candles(model: $m, provider: $p, variant: $v, days: 90, interval: DAY) { open close } }",
            {"m": model, "p": chart["provider"], "v": chart["variant"]},
        )["candles"]
        assert expected and chart["bars"] == len(expected), chart
    first = drawn[0]
    site.record(model, first["provider"], "7.5", "12.5", first["variant"])  # blended 10
    page.wait_for_function(
        """([provider, variant]) => {
             const c = Object.values(window.pricegraphCharts).find(
               c => c.offer.provider === provider && c.offer.variant === variant);
             const bars = c.series.data();
             const last = bars[bars.length - 1];
             return last.close === 10 && last.high >= 10;
           }""",
        arg=[first["provider"], first["variant"]],
        timeout=2000,
    )
    after = next(c for c in _drawn(page) if (c["provider"], c["variant"]) == (first["provider"], first["variant"]))
    assert after["bars"] in (first["bars"], first["bars"] + 1)  # the day's candle moved, or today's opened
    _offline(watched, site)


def _sign_in(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    count = len(site.inbox.messages)
    page.goto(site.url + "/signin")
    page.fill("#email", OWNER.upper())  # addresses match whatever their case
    page.click("button[type=submit]")
    expect(page.locator("#sent")).to_contain_text(OWNER.upper())

    def link_mail() -> Any:
        return next((m for m in site.inbox.messages[count:] if "/signin/verify" in parts(m)[0]), None)

    message = wait_until(link_mail, what="the sign-in e-mail")
    assert message["to"] == OWNER
    link = re.search(r"https?://\S+/signin/verify\?token=[\w.\-]+", parts(message)[0])
    assert link is not None
    page.goto(link.group(0))
    page.click("#continue")
    expect(page).to_have_url(site.url + "/console")


def test_a_customer_signs_in_by_email_link_creates_a_key_sees_it_once_and_revokes_it(
    site: Site, watched: Watched
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(site, page)
    expect(page.locator("h1")).to_contain_text("Acme")
    cookie = next(c for c in page.context.cookies() if c["name"] == "pricegraph_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # Secure off localhost
    page.fill("input[name=name]", "ci deploy")
    page.click("#create-key")
    secret = page.locator("#new-key-secret").text_content()
    assert secret and secret.startswith("cxm_")
    key_id = page.locator("#key-list tr", has_text="ci deploy").get_attribute("data-key")
    me = httpx.get(f"{site.url}/v1/me", headers={"authorization": f"Bearer {secret}"})
    assert me.status_code == 200, me.text
    page.goto(site.url + "/console")
    assert secret not in page.content()  # shown once
    page.locator(f'#key-list tr[data-key="{key_id}"] button', has_text="Revoke").click()
    expect(page.locator(".notice")).to_contain_text("revoked")
    expect(page.locator(f'#key-list tr[data-key="{key_id}"]')).to_contain_text("revoked")
    refused = httpx.get(f"{site.url}/v1/me", headers={"authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    assert httpx.get(f"{site.url}/v1/me", headers={"authorization": f"Bearer {site.owner_key}"}).status_code == 200
    csv = page.request.get(site.url + "/console/usage.csv")
    assert csv.status == 200 and csv.text().splitlines()[0].startswith("id,created_at,model")
    _offline(watched, site)


def test_a_sign_in_from_a_new_device_is_emailed_once(site: Site, browser: Any) -> None:
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"

    def notices() -> list[Any]:
        return [m for m in site.inbox.messages if "Firefox on Windows" in parts(m)[0]]

    def sign_in(user_agent: str | None) -> None:
        context = browser.new_context(user_agent=user_agent) if user_agent else browser.new_context()
        _sign_in(site, context.new_page())
        context.close()

    assert notices() == []
    sign_in(None)  # the usual browser
    sign_in(agent)  # a new one
    notice = wait_until(notices, what="the new device e-mail")[0]
    assert "new sign-in" in str(notice["subject"]).lower() and notice["to"] == OWNER
    assert "127.0.0.0/24" in parts(notice)[0]
    sign_in(agent)  # known now: no e-mail
    sign_in(None)  # its link comes after anything the sign-in before queued
    assert len(notices()) == 1


def test_a_form_posted_without_its_csrf_token_is_refused(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(site, page)
    keys = page.locator("#key-list tbody tr").count()
    for form in ({"name": "forged"}, {"name": "forged", "csrf_token": "not-the-token"}):
        refused = page.request.post(site.url + "/console/keys", form=form)
        assert refused.status == 403
        assert "security token" in refused.text()
    from_elsewhere = page.request.post(
        site.url + "/console/keys",
        form={"name": "forged", "csrf_token": page.locator("input[name=csrf_token]").first.input_value()},
        headers={"origin": "http://evil.example"},
    )
    assert from_elsewhere.status == 403
    page.reload()
    expect(page.locator("#key-list tbody tr")).to_have_count(keys)
    assert page.request.post(site.url + "/signin", form={"email": OWNER}).status == 403
    assert page.request.post(site.url + "/signout", form={}).status == 403


def test_graphiql_runs_a_query_offline(site: Site, watched: Watched) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(site.url + "/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible(timeout=10000)
    page.locator(".graphiql-execute-button").click()
    expect(page.locator(".graphiql-response")).to_contain_text("Llama 3.3 70B", timeout=10000)
    page.locator("button[aria-label='Show GraphiQL Explorer']").click()
    expect(page.locator(".graphiql-explorer-root, .docExplorerWrap").first).to_be_visible()
    _offline(watched, site)


def test_screenshots_are_in_the_docs() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    readme = (docs.parent / "README.md").read_text()
    for name in ("board.png", "model.png", "console.png"):
        assert (docs / name).stat().st_size > 10_000
        assert f"docs/{name}" in readme
