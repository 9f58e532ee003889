"""The SSRF-safe sender on its own: every forbidden destination refused before any connection, literal or
resolved (IPv4 and IPv6, mapped addresses, a name resolving to a private address), the address checked is
the address connected to (an answer that changes between check and connect changes nothing), redirects
not followed, and a deadline on slow answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from datasources.delivery import Sender, forbidden
from tests.webhook_receiver import Answer, Receiver

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://[64:ff9b::a00:1]/",
    ],
)
async def test_forbidden_addresses_are_refused(url: str) -> None:
    sender = Sender()
    try:
        sent = await sender.post(url, b"{}", {})
    finally:
        await sender.aclose()
    assert sent.status is None and sent.address is None and (sent.error or "").startswith("refused")


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    sender = Sender(resolver=resolver)
    try:
        sent = await sender.post("https://hooks.example.test/in", b"{}", {})
    finally:
        await sender.aclose()
    assert "10.1.2.3" in (sent.error or "") and "private" in (sent.error or "")


async def test_localhost_by_name_is_refused_unless_allowed() -> None:
    with Receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        refused, allowed = Sender(), Sender(allow_hosts=frozenset({"localhost"}))
        try:
            assert "loopback" in ((await refused.post(f"http://localhost:{port}/x", b"{}", {})).error or "")
            sent = await allowed.post(f"http://localhost:{port}/x", b'{"a":1}', {"x-test": "1"})
        finally:
            await refused.aclose()
            await allowed.aclose()
        assert sent.ok and sent.status == 200
        (got,) = receiver.seen()
        assert got.body == b'{"a":1}' and got.headers["host"] == f"localhost:{port}"


async def test_the_checked_address_is_the_one_connected_to() -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    targets: list[httpx.Request] = []

    def outside(request: httpx.Request) -> httpx.Response:  # stands in for the public internet
        targets.append(request)
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    sender = Sender(resolver=rebinding, transport=httpx.MockTransport(outside))
    try:
        sent = await sender.post("https://hooks.example.test/in", b"{}", {})
    finally:
        await sender.aclose()
    assert sent.ok and calls == ["hooks.example.test"]
    (request,) = targets
    assert request.url.host == PUBLIC and request.headers["host"] == "hooks.example.test"
    assert request.extensions["sni_hostname"] == "hooks.example.test"


async def test_redirects_are_not_followed_and_slow_answers_time_out() -> None:
    with Receiver() as receiver, Receiver() as elsewhere:
        receiver.answer(Answer(redirect=f"{elsewhere.url}/x"), Answer(delay=2.0))
        sender = Sender(allow_hosts=frozenset({"127.0.0.1"}), timeout=0.3)
        try:
            moved = await sender.post(f"{receiver.url}/a", b"{}", {})
            slow = await sender.post(f"{receiver.url}/b", b"{}", {})
        finally:
            await sender.aclose()
        assert moved.status == 302 and "redirect" in (moved.error or "") and elsewhere.seen() == []
        assert slow.status is None and "timed out" in (slow.error or "")
        await asyncio.sleep(0)


async def test_other_schemes_and_credentials_are_refused() -> None:
    sender = Sender()
    try:
        for url in ("ftp://example.com/x", "http://user:pw@example.com/", "file:///etc/passwd"):
            assert ((await sender.post(url, b"", {})).error or "").startswith("refused"), url
    finally:
        await sender.aclose()


def test_public_addresses_pass() -> None:
    import ipaddress

    assert forbidden(ipaddress.ip_address(PUBLIC)) is None
    assert forbidden(ipaddress.ip_address("2606:4700:4700::1111")) is None
