"""A webhook receiver: a real HTTP server on 127.0.0.1 that records what it is sent and answers as told
(a status, a delay, a redirect), one behaviour per request in turn, then the last one for good."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    redirect: str | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    answers: list[Answer] = field(default_factory=lambda: [Answer()])
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self.hook, methods=["POST", "GET"])])
        self.server = LiveServer(app)
        self.url = self.server.url

    def __enter__(self) -> Receiver:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.answers = list(answers)

    def seen(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append(Received(request.url.path, dict(request.headers), body))
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.redirect:
            return RedirectResponse(answer.redirect, status_code=302)
        return Response(b'{"ok": true}' if answer.status < 300 else b"nope", status_code=answer.status)


def payloads(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.seen()]
