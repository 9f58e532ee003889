"""The Polar client against a fake of Polar's API on 127.0.0.1: checkouts carry the product, the amount in
cents, the account in their metadata and the bearer token, and Polar's refusals become PolarError without
the token; amounts outside 1 to 10,000 USD in whole cents are refused before any request. Webhooks: a
delivery signed as Polar signs it parses to an exact order event; a wrong signature, a body changed after
signing, a stale timestamp or missing headers are refused; events that move no money are None."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from polar.v2026_10 import webhooks as sdk_webhooks

from datasources.polar import (
    Checkout,
    OrderEvent,
    PolarConfig,
    PolarError,
    WebhookRefused,
    check_amount,
    create_checkout,
    parse_webhook,
)
from tests.fake_polar import FakePolar, order_event, signed

SECRET = "polar_whs_test_secret_0123456789"
PRODUCT = "prod_topup_0001"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakePolar]:
    with FakePolar() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakePolar) -> FakePolar:
    fake_server.reset()
    return fake_server


def config_for(fake: FakePolar, **changes: str | None) -> PolarConfig:
    fields: dict[str, str | None] = {"access_token": fake.token, "product_id": PRODUCT, "webhook_secret": SECRET}
    fields.update(changes)
    return PolarConfig(**fields, base_url=fake.url)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- checkouts -------------------------------------------------------------------------------------


async def test_a_checkout_answers_polars_url_for_the_product_amount_and_account(fake: FakePolar) -> None:
    made = await create_checkout(config_for(fake), Decimal("20"), 42)
    assert isinstance(made, Checkout) and made.amount == Decimal("20")
    assert made.url.startswith(f"{fake.url}/checkout/polar_c_") and made.id.startswith("chk_")
    [sent] = fake.seen()
    assert (sent.method, sent.path) == ("POST", "/v1/checkouts/")
    assert sent.authorization == f"Bearer {fake.token}"
    assert sent.headers["polar-version"] == "2026-10"
    assert sent.body["products"] == [PRODUCT]
    assert sent.body["amount"] == 2000 and isinstance(sent.body["amount"], int)
    assert sent.body["metadata"] == {"account_id": "42", "amount": "20"}
    assert "success_url" not in sent.body and "customer_email" not in sent.body


async def test_a_checkout_passes_cents_exactly_the_success_url_and_the_customers_email(fake: FakePolar) -> None:
    config = config_for(fake, success_url="https://pricegraph.test/billing/done?checkout_id={CHECKOUT_ID}")
    made = await create_checkout(config, Decimal("12.34"), 7, customer_email="pay@example.test")
    assert made.amount == Decimal("12.34")
    sent = fake.seen()[-1]
    assert sent.body["amount"] == 1234
    assert sent.body["metadata"] == {"account_id": "7", "amount": "12.34"}
    assert sent.body["success_url"] == "https://pricegraph.test/billing/done?checkout_id={CHECKOUT_ID}"
    assert sent.body["customer_email"] == "pay@example.test"
    for amount, cents in ((Decimal("1"), 100), (Decimal("10000.00"), 1_000_000), (Decimal("0.29E+2"), 2900)):
        await create_checkout(config, amount, 7)
        assert fake.seen()[-1].body["amount"] == cents


async def test_a_wrong_token_is_a_polar_error_without_the_token(fake: FakePolar) -> None:
    wrong = "polar_oat_wrong_token_value"
    with pytest.raises(PolarError) as refused:
        await create_checkout(config_for(fake, access_token=wrong), Decimal("5"), 1)
    assert "401" in str(refused.value) and wrong not in str(refused.value)
    assert fake.seen()[-1].authorization == f"Bearer {wrong}"  # it did reach the fake, and was refused there


@pytest.mark.parametrize("status", [500, 503, 422, 429, 404])
async def test_polar_failures_are_polar_errors_without_the_token(fake: FakePolar, status: int) -> None:
    fake.fail_next(status)
    with pytest.raises(PolarError) as failed:
        await create_checkout(config_for(fake), Decimal("5"), 1)
    assert fake.token not in str(failed.value) and fake.token not in repr(failed.value)
    assert failed.value.__cause__ is None and failed.value.__context__ is not None
    assert len(fake.seen()) == 1
    # The failure was one-off: the next checkout goes through.
    assert (await create_checkout(config_for(fake), Decimal("5"), 1)).url.startswith(fake.url)


async def test_an_unreachable_polar_is_a_polar_error() -> None:
    config = PolarConfig("polar_oat_secret", PRODUCT, None, base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(PolarError, match="reached") as failed:
        await create_checkout(config, Decimal("5"), 1)
    assert "polar_oat_secret" not in str(failed.value)


async def test_an_unknown_server_is_a_polar_error() -> None:
    with pytest.raises(PolarError, match="server"):
        await create_checkout(PolarConfig("t", PRODUCT, None, server="staging"), Decimal("5"), 1)


@pytest.mark.parametrize(
    "amount", ["0", "0.5", "0.99", "10001", "10000.01", "1.234", "5.001", "-5", "NaN", "Infinity", "1e30"]
)
async def test_amounts_outside_a_top_up_are_refused_before_any_request(fake: FakePolar, amount: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        await create_checkout(config_for(fake), Decimal(amount), 1)
    with pytest.raises(ValueError, match="amount"):
        check_amount(Decimal(amount))
    assert fake.seen() == []


@pytest.mark.parametrize("amount", [5, 5.0, "5"])
def test_an_amount_must_be_a_decimal(amount: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        check_amount(amount)  # type: ignore[arg-type]


def test_the_config_repr_shows_neither_token_nor_secret() -> None:
    config = PolarConfig("polar_oat_very_secret", PRODUCT, "polar_whs_very_secret", server="sandbox")
    assert "very_secret" not in repr(config) and "very_secret" not in str(config)
    assert PRODUCT in repr(config) and "sandbox" in repr(config)


# ---- webhooks --------------------------------------------------------------------------------------


def test_a_signed_order_paid_parses_to_exact_amounts_and_the_account() -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_1", 42, 1999), msg_id="msg_paid_1")
    event = parse_webhook(body, headers, SECRET)
    assert event == OrderEvent(
        type="order.paid",
        webhook_id="msg_paid_1",
        order_id="ord_1",
        account_id=42,
        amount=Decimal("19.99"),
        refunded=Decimal("0.00"),
        currency="usd",
    )
    assert isinstance(event.amount, Decimal) and str(event.amount) == "19.99"


def test_an_order_refunded_gives_what_was_refunded_so_far() -> None:
    body, headers = signed(SECRET, order_event("order.refunded", "ord_2", 9, 5000, refunded_cents=1250))
    event = parse_webhook(body, headers, SECRET)
    assert event is not None and event.type == "order.refunded" and event.account_id == 9
    assert (event.amount, event.refunded) == (Decimal("50.00"), Decimal("12.50"))
    assert event.webhook_id == headers["webhook-id"]


def test_the_amount_paid_is_before_tax() -> None:
    event = order_event("order.paid", "ord_tax", 3, 1000)
    event["data"].update(tax_amount=200, total_amount=1200)
    body, headers = signed(SECRET, event)
    parsed = parse_webhook(body, headers, SECRET)
    assert parsed is not None and parsed.amount == Decimal("10.00")


def test_a_delivery_signed_by_the_fake_verifies_with_the_sdks_own_validator() -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_sdk", 5, 700))
    payload = sdk_webhooks.validate_event(body, headers, SECRET)
    assert isinstance(payload, sdk_webhooks.WebhookOrderPaidPayload)
    assert payload.data.net_amount == 700 and payload.data.metadata["account_id"] == "5"


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"account_id": ""},
        {"account_id": "abc"},
        {"account_id": "-3"},
        {"account_id": "1.5"},
        {"account_id": True},
        {"account_id": "²"},
        None,
    ],
)
def test_an_order_without_a_readable_account_has_none(metadata: object) -> None:
    event = order_event("order.paid", "ord_3", None, 1000)
    event["data"]["metadata"] = metadata
    body, headers = signed(SECRET, event)
    parsed = parse_webhook(body, headers, SECRET)
    assert parsed is not None and parsed.account_id is None and parsed.amount == Decimal("10.00")


def test_an_account_id_stored_as_a_number_is_read() -> None:
    event = order_event("order.paid", "ord_4", None, 1000)
    event["data"]["metadata"] = {"account_id": 77}
    body, headers = signed(SECRET, event)
    parsed = parse_webhook(body, headers, SECRET)
    assert parsed is not None and parsed.account_id == 77


@pytest.mark.parametrize(
    "kind",
    [
        "checkout.created",
        "checkout.updated",
        "order.created",
        "order.updated",
        "customer.state_changed",
        "subscription.active",
    ],
)
def test_events_that_move_no_money_are_none(kind: str) -> None:
    event = order_event("order.paid", "ord_5", 1, 1000) if kind.startswith("order.") else {"data": {"id": "x"}}
    event = {**event, "type": kind, "timestamp": "2026-12-02T00:00:00Z"}
    body, headers = signed(SECRET, event)
    assert parse_webhook(body, headers, SECRET) is None


def test_a_wrong_signature_is_refused() -> None:
    body, headers = signed("polar_whs_another_secret", order_event("order.paid", "ord_6", 1, 1000))
    with pytest.raises(WebhookRefused, match="signature"):
        parse_webhook(body, headers, SECRET)


def test_a_body_changed_after_signing_is_refused() -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_7", 1, 5000))
    tampered = body.replace(b'"net_amount":5000', b'"net_amount":9000')
    assert tampered != body
    with pytest.raises(WebhookRefused):
        parse_webhook(tampered, headers, SECRET)
    with pytest.raises(WebhookRefused):
        parse_webhook(body, {**headers, "webhook-id": "msg_other"}, SECRET)  # the id is signed too


@pytest.mark.parametrize("offset", [-600, -301, 600])
def test_a_timestamp_more_than_five_minutes_off_is_refused(offset: int) -> None:
    event = order_event("order.paid", "ord_8", 1, 1000)
    body, headers = signed(SECRET, event, timestamp=int(time.time()) + offset)
    with pytest.raises(WebhookRefused, match="timestamp"):
        parse_webhook(body, headers, SECRET)


def test_a_timestamp_within_five_minutes_is_accepted() -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_9", 1, 1000), timestamp=int(time.time()) - 240)
    assert parse_webhook(body, headers, SECRET) is not None


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature", "all"])
def test_missing_headers_are_refused(missing: str) -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_10", 1, 1000))
    kept = {} if missing == "all" else {k: v for k, v in headers.items() if k != missing}
    with pytest.raises(WebhookRefused):
        parse_webhook(body, kept, SECRET)


@pytest.mark.parametrize("signature", ["", "garbage", "v1,not base64!", "v2,abc", "v1"])
def test_malformed_signatures_are_refused(signature: str) -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_11", 1, 1000))
    with pytest.raises(WebhookRefused):
        parse_webhook(body, {**headers, "webhook-signature": signature}, SECRET)


def test_headers_are_read_whatever_their_case_and_any_listed_signature_may_match() -> None:
    body, headers = signed(SECRET, order_event("order.paid", "ord_12", 1, 1000), msg_id="msg_case")
    title = {k.title(): v for k, v in headers.items()}
    title["Webhook-Signature"] = "v1,bm90IHRoaXMgb25l " + title["Webhook-Signature"]
    parsed = parse_webhook(body, title, SECRET)
    assert parsed is not None and parsed.webhook_id == "msg_case"


def test_no_secret_refuses_everything() -> None:
    body, headers = signed("", order_event("order.paid", "ord_13", 1, 1000))
    with pytest.raises(WebhookRefused):
        parse_webhook(body, headers, "")


def test_a_signed_order_event_with_a_garbled_order_is_refused() -> None:
    garbled: list[object] = [
        None,
        [],
        {},
        {"id": "ord_14", "net_amount": "10.00"},
        {"id": "ord_14", "net_amount": 10.5},
    ]
    for data in garbled:
        body, headers = signed(SECRET, {"type": "order.paid", "timestamp": "2026-12-02T00:00:00Z", "data": data})
        with pytest.raises(WebhookRefused):
            parse_webhook(body, headers, SECRET)
    body, headers = signed(SECRET, {"type": "order.paid"})
    body = b"[" + body  # not JSON, yet validly signed
    headers = signed_raw(body, headers["webhook-id"])
    with pytest.raises(WebhookRefused, match="JSON"):
        parse_webhook(body, headers, SECRET)


def signed_raw(body: bytes, msg_id: str) -> dict[str, str]:
    """Headers signing `body` as it is (the helper signs JSON it encodes itself)."""
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_the_event_json_is_what_polar_sends() -> None:
    event = order_event("order.paid", "ord_15", 1, 1000)
    assert set(event) == {"type", "timestamp", "api_version", "data"}
    body, _ = signed(SECRET, event)
    assert json.loads(body) == event
