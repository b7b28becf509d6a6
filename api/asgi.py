"""The shape our pure ASGI middlewares share (no per-request task or body copy, unlike
Starlette's ``BaseHTTPMiddleware``): every non-HTTP scope passes straight through, and
an HTTP request is handed to ``http`` with, where it needs it, a ``send`` that notes the
answer's status on its way out (``Watched``)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class Watched:
    """A ``send`` that notes the response's status as it starts. Until then ``started``
    is false and ``status`` 500: a request that fails before answering has failed."""

    __slots__ = ("send", "started", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        await self.send(message)
