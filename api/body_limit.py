"""Refuse request bodies over ``CAREJOURNEY_API_MAX_BODY_BYTES`` with 413, before parsing.

A declared ``Content-Length`` over the limit is refused without reading a byte; a body
sent in chunks is counted as it arrives and refused as soon as it passes the limit, so a
client cannot make the server buffer more than the limit either way.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.asgi import HttpMiddleware
from api.problems import ProblemError, instance_of, problem_response


class BodyTooLarge(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__("too-large", f"request body is larger than {limit} bytes")


class BodyLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = problem_response(
                        "too-large",
                        f"request body is larger than {self.max_bytes} bytes",
                        instance=instance_of(scope),
                        headers={"Connection": "close"},
                    )
                    await response(scope, receive, send)
                    return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)
