"""The caller's own account and keys."""

from __future__ import annotations

import strawberry

from datasources import accounts
from schema.accounts import Account, ApiKey, CreatedApiKey
from schema.bounds import Page
from schema.context import Info

KEYS = Page(default=100, maximum=1000)


async def me(info: Info) -> Account | None:
    account_id = info.context.caller.require_account()
    await info.context.recorder.caught_up(account_id)
    async with info.context.sessionmaker() as session:
        return Account(row=await accounts.get_account(session, account_id))


async def api_keys(info: Info, first: int = KEYS.default, offset: int = 0) -> list[ApiKey] | None:
    account_id = info.context.caller.require_account()
    KEYS.check(first, offset)
    async with info.context.sessionmaker() as session:
        keys = await accounts.list_keys(session, account_id)
    return [ApiKey(row=k) for k in KEYS.take(keys, first, offset)]


async def create_api_key(info: Info, name: str = "") -> CreatedApiKey:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session, session.begin():
        issued = await accounts.create_key(session, account_id, name.strip(), info.context.broker)
    return CreatedApiKey(key=ApiKey(row=issued.key), secret=issued.secret)


async def revoke_api_key(info: Info, id: strawberry.ID) -> ApiKey:  # noqa: A002 - the GraphQL argument's name
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session, session.begin():
        return ApiKey(row=await accounts.revoke_key(session, str(id), account_id, info.context.broker))
