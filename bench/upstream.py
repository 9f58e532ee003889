"""An OpenAI-compatible upstream that answers at once, for the gateway benchmark: an asyncio-protocol
HTTP/1.1 keep-alive server (like bench/transport.py's) in its own process. Any POST is a chat completion;
a body with `"stream": true` gets a server-sent-event stream of CHUNKS content chunks (each its own HTTP
chunk and socket write, with a turn of the event loop between them so they leave as separate segments),
a finishing chunk, a usage chunk and `data: [DONE]`.

    python -m bench.upstream --port 9100 [--chunks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}'
)
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def sse_events(chunks: int) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "bench-model"}

    def event(choices: list[dict[str, object]], **extra: object) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}, separators=(",", ":")).encode() + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [event([{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]) for i in range(chunks)]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(event([], usage={"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}))
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events]


class Upstream(asyncio.Protocol):
    events: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.busy: asyncio.Task[None] | None = None
        self.queue: list[bool] = []

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy is not None:
            self.busy.cancel()

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
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            stream = b'"stream":true' in body.replace(b" ", b"")
            if self.busy is None and not stream:
                self.transport.write(ANSWER)
            else:
                self.queue.append(stream)
                if self.busy is None:
                    self.busy = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        while self.queue:
            if self.queue.pop(0):
                self.transport.write(STREAM_HEAD)
                for event in self.events:
                    self.transport.write(event)
                    await asyncio.sleep(0)
                self.transport.write(b"0\r\n\r\n")
            else:
                self.transport.write(ANSWER)
        self.busy = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    Upstream.events = sse_events(args.chunks)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", args.port, backlog=1024)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
