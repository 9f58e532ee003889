from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from datasources.catalog.litellm import parse_litellm_file
from datasources.db import migrate
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Account, ApiKey, BalanceTransaction, Offer, OutboxMessage, PriceTick
from tests.conftest import Databases, data_files

ROOT = Path(__file__).resolve().parents[1]

LLAMA_GROQ = {
    "litellm_provider": "groq",
    "mode": "chat",
    "input_cost_per_token": 5.9e-07,
    "output_cost_per_token": 7.9e-07,
    "max_input_tokens": 128000,
    "supports_function_calling": True,
}
LLAMA_TOGETHER = {
    "litellm_provider": "together_ai",
    "mode": "chat",
    "input_cost_per_token": 8.8e-07,
    "output_cost_per_token": 8.8e-07,
    "max_input_tokens": 131072,
}
SMALL_CATALOG = {
    "groq/llama-3.3-70b-versatile": LLAMA_GROQ,
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": LLAMA_TOGETHER,
    "text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08},
}


def run(url: URL | str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url if isinstance(url, str) else url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=300,
    )


async def counts(url: URL) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            offers = (await session.execute(select(func.count()).select_from(Offer))).scalar_one()
            ticks = (await session.execute(select(func.count()).select_from(PriceTick))).scalar_one()
        return offers, ticks
    finally:
        await engine.dispose()


@pytest.fixture
async def fresh_url(databases: Databases) -> URL:
    """An empty database with no schema: every command migrates it first."""
    return await databases.new()


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


async def test_migrate_up_and_down(fresh_url: URL) -> None:
    up = run(fresh_url, "migrate")
    assert up.returncode == 0, up.stderr
    assert f"database at revision {migrate.head_revision()}" in up.stdout
    down = run(fresh_url, "migrate", "--down", "base")
    assert down.returncode == 0, down.stderr
    assert "database at revision base" in down.stdout


async def test_import_is_idempotent_and_a_changed_price_is_a_tick(fresh_url: URL, tmp_path: Path) -> None:
    path = write(tmp_path / "prices.json", SMALL_CATALOG)
    first = run(fresh_url, "import", str(path), "--format", "litellm")
    assert first.returncode == 0, first.stderr
    assert "2 new offers" in first.stdout and "2 price ticks" in first.stdout
    assert await counts(fresh_url) == (2, 2)

    again = run(fresh_url, "import", str(path), "--format", "litellm")
    assert again.returncode == 0, again.stderr
    assert "0 new offers, 0 updated, 2 unchanged, 0 price ticks" in again.stdout
    assert await counts(fresh_url) == (2, 2)

    changed = {**SMALL_CATALOG, "groq/llama-3.3-70b-versatile": {**LLAMA_GROQ, "output_cost_per_token": 6.9e-07}}
    write(path, changed)
    third = run(fresh_url, "import", str(path), "--format", "litellm")
    assert third.returncode == 0, third.stderr
    assert "1 price ticks" in third.stdout
    assert await counts(fresh_url) == (2, 3)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"groq/llama-3.3-70b-versatile": {"litellm_provider": "groq", "mode": "ch', "line 1"),
        ("[1, 2, 3]", "object"),
        (
            json.dumps({"groq/llama-3.3-70b-versatile": {**LLAMA_GROQ, "input_cost_per_token": "abc"}}, indent=1),
            "groq/llama-3.3-70b-versatile",
        ),
        (
            json.dumps({"groq/llama-3.3-70b-versatile": {**LLAMA_GROQ, "output_cost_per_token": -1}}, indent=1),
            "groq/llama-3.3-70b-versatile",
        ),
        (json.dumps({"ok": LLAMA_TOGETHER, "groq/x": "not an object"}, indent=1), "groq/x"),
    ],
    ids=["truncated", "not-an-object", "price-not-a-number", "negative-price", "entry-not-an-object"],
)
async def test_a_bad_file_names_the_file_and_entry_and_writes_nothing(
    fresh_url: URL, tmp_path: Path, content: str, expected: str
) -> None:
    good = write(tmp_path / "good.json", SMALL_CATALOG)
    assert run(fresh_url, "import", str(good), "--format", "litellm").returncode == 0
    bad = tmp_path / "bad.json"
    # A bad file that also carries a changed price for an existing offer: that change must not land.
    bad.write_text(content.replace("5.9e-07", "1e-06"))
    result = run(fresh_url, "import", str(bad), "--format", "litellm")
    assert result.returncode == 1
    assert "bad.json" in result.stderr and expected in result.stderr
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert await counts(fresh_url) == (2, 2)


async def test_wrong_format_and_missing_file(fresh_url: URL, tmp_path: Path) -> None:
    path = write(tmp_path / "prices.json", SMALL_CATALOG)
    wrong = run(fresh_url, "import", str(path), "--format", "openrouter")
    assert wrong.returncode == 1 and "prices.json" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = run(fresh_url, "import", str(tmp_path / "nope.json"), "--format", "litellm")
    assert missing.returncode == 2 and "nope.json" in missing.stderr
    unknown = run(fresh_url, "import", str(path), "--format", "csv")
    assert unknown.returncode == 2 and "litellm" in unknown.stderr


@pytest.mark.parametrize("path", data_files("litellm_model_prices.json"))
async def test_import_a_litellm_catalog(fresh_url: URL, path: Path) -> None:
    """The trimmed catalog of tests/fixtures, and the full real one (a real-data test)."""
    first = run(fresh_url, "import", str(path), "--format", "litellm")
    assert first.returncode == 0, first.stderr
    offers, ticks = await counts(fresh_url)
    assert offers == len(parse_litellm_file(path)) and ticks == offers
    again = run(fresh_url, "import", str(path), "--format", "litellm")
    assert again.returncode == 0, again.stderr
    assert " 0 price ticks" in again.stdout
    assert await counts(fresh_url) == (offers, ticks)


async def test_accounts_create_prints_the_key_once_and_stores_its_hash(fresh_url: URL) -> None:
    result = run(fresh_url, "accounts", "create", "--plan", "Developer", "--credit", "5.25", "--name", "acme")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    secret, key_id = lines["api key"], lines["key id"]
    assert secret.startswith("cxm_") and key_id.startswith("key_")
    assert "balance 5.25" in result.stdout and "(developer)" in result.stdout

    engine = create_engine(fresh_url)
    try:
        async with sessionmaker(engine)() as session:
            key = await session.get(ApiKey, key_id)
            account = (await session.execute(select(Account))).scalar_one()
            ledger = (await session.execute(select(BalanceTransaction.amount))).scalars().all()
    finally:
        await engine.dispose()
    assert key is not None and key.secret_hash != secret and secret not in key.secret_hash
    assert account.name == "acme" and account.balance == Decimal("5.25") and ledger == [Decimal("5.25")]

    revoked = run(fresh_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0 and f"revoked {key_id}" in revoked.stdout
    missing = run(fresh_url, "keys", "revoke", "key_nope")
    assert missing.returncode == 1 and "key_nope" in missing.stderr


async def test_accounts_create_rejects_bad_input(fresh_url: URL) -> None:
    plan = run(fresh_url, "accounts", "create", "--plan", "gold")
    assert plan.returncode == 2
    assert "gold" in plan.stderr and "free, developer, team, enterprise" in plan.stderr
    credit = run(fresh_url, "accounts", "create", "--plan", "team", "--credit", "-3")
    assert credit.returncode == 2 and "--credit" in credit.stderr


async def test_accounts_get_an_email_address(fresh_url: URL) -> None:
    made = run(fresh_url, "accounts", "create", "--plan", "team", "--email", "ops@example.test")
    assert made.returncode == 0, made.stderr
    account_id = made.stdout.split()[1]
    bad = run(fresh_url, "accounts", "create", "--plan", "team", "--email", "not-an-address")
    assert bad.returncode == 2 and "--email" in bad.stderr
    changed = run(fresh_url, "accounts", "email", account_id, "billing@example.test")
    assert changed.returncode == 0 and "billing@example.test" in changed.stdout
    engine = create_engine(fresh_url)
    try:
        async with sessionmaker(engine)() as session:
            account = (await session.execute(select(Account))).scalar_one()
            mails = (await session.execute(select(OutboxMessage.recipient))).scalars().all()
    finally:
        await engine.dispose()
    assert account.email == "billing@example.test"
    assert mails == ["ops@example.test"]  # the first key's e-mail, queued (no SMTP_URL here)


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "not a url", "sqlite:////nonexistent/dir/x.db"])
def test_unusable_database_url_is_one_line(url: str, tmp_path: Path) -> None:
    result = run(url, "migrate", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
