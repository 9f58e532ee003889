"""Takes README's screenshots (docs/board.png, docs/model.png, docs/console.png) of a server started here on
a throwaway SQLite database with the seed catalog, a few days of price moves and a customer with some usage.

    .venv/bin/python docs/screenshots.py          # needs Debian's chromium (or CHROMIUM=/path/to/chrome)
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from datasources import accounts, ledger  # noqa: E402
from datasources.callers import OperatorToken  # noqa: E402
from datasources.catalog.importer import ensure_seed  # noqa: E402
from datasources.db import migrate  # noqa: E402
from datasources.db.engine import create_engine, sessionmaker  # noqa: E402
from datasources.db.models import Plan, UsageRecord, WebSession  # noqa: E402
from routing.web.browser import SESSION_COOKIE  # noqa: E402
from tests.conftest import LiveServer  # noqa: E402

ADMIN = "screenshots-admin"
MOVES = [("gpt-4o-mini", "openai", ""), ("llama-3.3-70b", "deepinfra", ""), ("llama-3.3-70b", "together", "")]


async def prepare(url: str) -> int:
    engine = create_engine(make_url(url))
    await migrate.upgrade(engine)
    sessions = sessionmaker(engine)
    await ensure_seed(sessions)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        account, issued = await accounts.create_account(
            session, Plan.TEAM, Decimal(40), name="Acme Robotics", email="ops@acme.example"
        )
        await accounts.create_key(session, account.id, "production")
        for day in range(14):
            for i, model in enumerate(("gpt-4o-mini", "llama-3.3-70b", "claude-3-5-haiku")):
                session.add(
                    UsageRecord(
                        account_id=account.id,
                        api_key_id=issued.key.id,
                        model_slug=model,
                        provider_slug="openai",
                        endpoint="/v1/chat/completions",
                        prompt_tokens=12000 * (i + 1) + day * 900,
                        completion_tokens=3000 + day * 150,
                        cost=Decimal("0.0125") * (i + 1) + Decimal(day) / 400,
                        status=200,
                        created_at=now - timedelta(days=13 - day, hours=i),
                        latency_ms=420,
                    )
                )
        await ledger.credit(session, account.id, Decimal(20), "top-up")
    await engine.dispose()
    return account.id


def history(server_url: str) -> None:
    """Three weeks of moves for a few offers, recorded as the operator would, so the charts have candles."""
    start = datetime.now(UTC) - timedelta(days=21)
    for day in range(21):
        for n, (model, provider, variant) in enumerate(MOVES):
            price = Decimal("0.15") + Decimal(n) / 10 + Decimal((day * 7 + n * 3) % 11 - 5) / 100
            answer = httpx.post(
                server_url + "/graphql",
                headers={"authorization": f"Bearer {ADMIN}"},
                json={
                    "query": "mutation($p: [PriceInput!]!, $at: DateTime) { recordPrices(prices: $p, observedAt: $at) { unchanged } }",
                    "variables": {
                        "p": [
                            {
                                "model": model,
                                "provider": provider,
                                "variant": variant,
                                "inputPer1m": str(price),
                                "outputPer1m": str(price * 3),
                            }
                        ],
                        "at": (start + timedelta(days=day, hours=n * 5)).isoformat(),
                    },
                },
            ).json()
            if "errors" in answer:
                raise RuntimeError(answer["errors"])


async def console_cookie(url: str, account_id: int) -> str:
    """A signed-in browser session for the account, as a sign-in link would start it."""
    cookie = secrets.token_urlsafe(32)
    engine = create_engine(make_url(url))
    async with sessionmaker(engine)() as session, session.begin():
        session.add(
            WebSession(
                id="ses_" + secrets.token_hex(8),
                account_id=account_id,
                token_hash=accounts.hash_secret(cookie),
                device="screenshots",
                browser="Chrome on Linux",
                network="127.0.0.0/24",
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    await engine.dispose()
    return cookie


def main() -> None:
    from playwright.sync_api import sync_playwright

    from server import Settings, create_app

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/screens.db"
        account_id = asyncio.run(prepare(url))
        cookie = asyncio.run(console_cookie(url, account_id))
        settings = Settings(database_url=make_url(url), secret_key="screenshots", operator=OperatorToken(ADMIN))
        with LiveServer(create_app(settings)) as server, sync_playwright() as playwright:
            history(server.url)
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + "/")
            page.wait_for_selector('#live[data-state="live"]')
            page.select_option("#sort", "move")
            page.screenshot(path=str(ROOT / "docs" / "board.png"))
            page.goto(server.url + "/models/llama-3.3-70b")
            page.wait_for_selector('#live[data-state="live"]')
            moved = page.evaluate(
                "() => Object.values(window.pricegraphCharts).find(c => c.offer.provider === 'deepinfra').offer.id"
            )
            page.locator(f'[data-chart="{moved}"]').scroll_into_view_if_needed()
            page.screenshot(path=str(ROOT / "docs" / "model.png"))
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": server.url}])
            console = context.new_page()
            console.goto(server.url + "/console")
            console.screenshot(path=str(ROOT / "docs" / "console.png"))
            browser.close()
    print("wrote docs/board.png, docs/model.png and docs/console.png")


if __name__ == "__main__":
    main()
