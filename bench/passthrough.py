"""The floor for the gateway benchmark: a bare aiohttp passthrough, no key, no database, no metering.
It forwards each POST to the upstream with one shared aiohttp client and relays the answer as it comes
(a stream chunk by chunk), which is the least any Python gateway can do per request.

    python -m bench.passthrough --port 9200 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse

from aiohttp import ClientSession, TCPConnector, web


async def _relay(request: web.Request) -> web.StreamResponse:
    client: ClientSession = request.app["client"]
    body = await request.read()
    async with client.post(
        request.app["upstream"] + request.path,
        data=body,
        headers={"content-type": "application/json", "authorization": request.headers.get("authorization", "")},
    ) as upstream:
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            response = web.StreamResponse(status=upstream.status, headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        return web.Response(status=upstream.status, body=await upstream.read(), content_type=upstream.content_type)


async def _client(app: web.Application) -> object:
    app["client"] = ClientSession(connector=TCPConnector(limit=1000))
    yield
    await app["client"].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    app = web.Application()
    app["upstream"] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(_client)
    app.router.add_post("/{tail:.*}", _relay)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
