"""Standard Webhooks signatures: the specification's known-answer vector, and agreement with the reference
`standardwebhooks` library both ways; tampering, another secret, stale or future timestamps and missing
headers are refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from datasources import signing

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIME, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'


def test_the_specifications_known_answer() -> None:
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY) == expected
    headers = signing.headers(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY)
    signing.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIME)


def test_our_signatures_verify_with_the_reference_library_and_back() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    now = int(datetime.now(UTC).timestamp())
    body = b'{"type":"price.changed","data":{"input_per_1m":0.15}}'
    Webhook(secret).verify(body, signing.headers(secret, "evt_1", now, body))
    theirs = Webhook(secret).sign("evt_2", datetime.fromtimestamp(now, UTC), body.decode())
    signing.verify(
        secret, {"Webhook-Id": "evt_2", "Webhook-Timestamp": str(now), "Webhook-Signature": theirs}, body, now=now
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, signing.headers(secret, "evt_1", now, body))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"test": 1}'}, "no matching signature"),
        ({"secret": "whsec_" + "QUJD" * 8}, "no matching signature"),
        ({"now": SPEC_TIME + 301}, "too old"),
        ({"now": SPEC_TIME - 301}, "future"),
        ({"drop": "webhook-signature"}, "missing"),
    ],
)
def test_bad_deliveries_are_refused(change: dict[str, object], message: str) -> None:
    headers = signing.headers(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY)
    if "drop" in change:
        headers.pop(str(change["drop"]))
    body = change.get("body", SPEC_BODY)
    assert isinstance(body, bytes)
    now = change.get("now", SPEC_TIME)
    assert isinstance(now, int)
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(str(change.get("secret", SPEC_SECRET)), headers, body, now=now)
