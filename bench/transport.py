"""CPU per upstream request: httpx's default transport, httpx over aiohttp (httpx-aiohttp, when installed)
and aiohttp alone, as the gateway uses it (`routing.gateway.forward.make_client`), against a local upstream
that answers at once (its own process, so only the client's CPU is counted).

    .venv/bin/python bench/transport.py [--requests 3000] [--concurrency 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from routing.gateway.forward import make_client  # noqa: E402

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}'
)
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
REQUEST = b'{"model":"m","messages":[{"role":"user","content":"Say hello."}]}'


class Upstream(asyncio.Protocol):
    """An HTTP/1.1 keep-alive server that answers every request at once (requests with a body)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


def serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Upstream, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


async def measure(client: httpx.AsyncClient, url: str, requests: int, concurrency: int) -> float:
    async def one() -> None:
        request = client.build_request("POST", url, content=REQUEST, headers={"content-type": "application/json"})
        response = await client.send(request, stream=True)
        async for _ in response.aiter_raw():
            pass
        await response.aclose()

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(2) for _ in range(concurrency)))  # warm the pool
    cpu = time.process_time()
    share, rest = divmod(requests, concurrency)
    await asyncio.gather(*(worker(share + (i < rest)) for i in range(concurrency)))
    return (time.process_time() - cpu) * 1000 / requests


async def run(url: str, requests: int, levels: list[int]) -> list[tuple[str, int, float]]:
    rows = []
    factories = [
        (
            "httpx default",
            lambda: httpx.AsyncClient(
                timeout=30, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            ),
        )
    ]
    try:
        from httpx_aiohttp import AiohttpTransport

        factories.append(
            (
                "httpx-aiohttp",
                lambda: httpx.AsyncClient(
                    transport=AiohttpTransport(
                        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
                    )
                ),
            )
        )
    except ImportError:
        pass
    for name, factory in factories:
        for concurrency in levels:
            async with factory() as client:
                rows.append((name, concurrency, await measure(client, url, requests, concurrency)))
    for concurrency in levels:  # the gateway's own client: aiohttp, without httpx's request and response objects
        async with make_client() as session:
            rows.append(("gateway (aiohttp)", concurrency, await measure_aiohttp(session, url, requests, concurrency)))
    return rows


async def measure_aiohttp(session: object, url: str, requests: int, concurrency: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            async with session.post(url, data=REQUEST, headers={"content-type": "application/json"}) as response:  # type: ignore[attr-defined]
                async for _chunk in response.content.iter_any():
                    pass

    await asyncio.gather(*(worker(2) for _ in range(concurrency)))
    cpu = time.process_time()
    share, rest = divmod(requests, concurrency)
    await asyncio.gather(*(worker(share + (i < rest)) for i in range(concurrency)))
    return (time.process_time() - cpu) * 1000 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    upstream = multiprocessing.Process(target=serve, args=(sock,), daemon=True)
    upstream.start()
    try:
        rows = asyncio.run(run(f"http://127.0.0.1:{port}/v1/chat/completions", args.requests, args.concurrency))
    finally:
        upstream.terminate()
        upstream.join()
    by = {(name, c): ms for name, c, ms in rows}
    print(f"{'transport':<16}" + "".join(f"{'c=' + str(c):>14}" for c in args.concurrency))
    for name in dict.fromkeys(name for name, _, _ in rows):
        print(f"{name:<18}" + "".join(f"{by[(name, c)]:>11.3f} ms" for c in args.concurrency))
    print(
        f"{'ratio':<18}"
        + "".join(f"{by[('httpx default', c)] / by[('gateway (aiohttp)', c)]:>12.1f} x" for c in args.concurrency)
    )
    print(f"CPU ms per request in the client process, {args.requests} requests per cell")


if __name__ == "__main__":
    main()
