"""Webhook deliveries that cannot be turned against the network they leave from (SSRF).

The host is resolved once; if any address it resolves to is loopback, private, link-local (the cloud
metadata address among them), unspecified, multicast, reserved or shared, the delivery is refused. IPv4
addresses inside IPv6 ones (mapped, compatible, NAT64, 6to4) are judged by the IPv4 address. Then the
request goes to the address that was checked (not to the name, which could answer otherwise a moment
later), with the name in `Host` and, for https, as the TLS server name. Redirects are not followed, the
whole exchange has a deadline, and at most `max_response_bytes` of the answer is read. Hosts on the
operator's allow-list (WEBHOOK_ALLOW_HOSTS) skip the address check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_IETF = ipaddress.ip_network("192.0.0.0/24")
_BENCHMARK = ipaddress.ip_network("198.18.0.0/15")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_V6 = ipaddress.ip_address("fd00:ec2::254")


class UnsafeDestination(ValueError):
    """A URL a delivery must not go to."""


@dataclass(frozen=True)
class Delivered:
    status: int | None  # None: no answer
    error: str | None  # None on a 2xx
    duration_ms: int
    response: str  # the first characters of the answer
    address: str | None  # the address connected to

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # IPv4-compatible (deprecated) ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def forbidden(address: IPAddress) -> str | None:
    """Why a delivery must not go to `address`, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return forbidden(inner)
        if address == _METADATA_V6:
            return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and (address in _SHARED or address in _IETF or address in _BENCHMARK):
        return "a shared or special-purpose address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


class Sender:
    def __init__(
        self,
        allow_hosts: frozenset[str] = frozenset(),
        timeout: float = 10.0,
        max_response_bytes: int = 64 * 1024,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_hosts = frozenset(h.lower().strip("[]") for h in allow_hosts)
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.resolver = resolver or system_resolver
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=timeout,
            transport=transport,
            headers={"user-agent": "pricegraph-webhooks"},
        )

    async def check(self, url: str) -> tuple[httpx.URL, str]:
        """The URL and the one address to connect to, or UnsafeDestination saying why not."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise UnsafeDestination(f"refused: not a URL ({exc})") from None
        if parsed.scheme not in ("http", "https"):
            raise UnsafeDestination(f"refused: only http and https, not {parsed.scheme or 'no scheme'}")
        if parsed.userinfo:
            raise UnsafeDestination("refused: credentials in the URL")
        host = parsed.host.lower()
        if not host:
            raise UnsafeDestination("refused: no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UnsafeDestination(f"refused: {host} does not resolve ({exc})") from None
            if not addresses:
                raise UnsafeDestination(f"refused: {host} does not resolve")
        if host not in self.allow_hosts:
            for raw in addresses:
                reason = forbidden(ipaddress.ip_address(raw.split("%", 1)[0]))
                if reason is not None:
                    shown = host if host == raw else f"{host} ({raw})"
                    raise UnsafeDestination(f"refused: {shown} is {reason}")
        return parsed, addresses[0].split("%", 1)[0]

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Delivered:
        started = time.monotonic()

        def took() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            parsed, address = await self.check(url)
        except UnsafeDestination as exc:
            return Delivered(None, str(exc), took(), "", None)
        host_header = parsed.netloc.decode("ascii")
        target = parsed.copy_with(host=address)
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        request = self.client.build_request(
            "POST", target, content=body, headers={**headers, "host": host_header}, extensions=extensions
        )
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.send(request, stream=True)
                try:
                    data = bytearray()
                    async for chunk in response.aiter_raw():
                        data += chunk
                        if len(data) >= self.max_response_bytes:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return Delivered(None, f"timed out after {self.timeout:g} s", took(), "", address)
        except httpx.HTTPError as exc:
            return Delivered(None, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__, took(), "", address)
        text = bytes(data[: self.max_response_bytes]).decode("utf-8", errors="replace")[:1000]
        status = response.status_code
        if 300 <= status < 400:
            return Delivered(status, f"redirect not followed ({status})", took(), text, address)
        if not 200 <= status < 300:
            return Delivered(status, f"answered {status}", took(), text, address)
        return Delivered(status, None, took(), text, address)

    async def aclose(self) -> None:
        await self.client.aclose()
