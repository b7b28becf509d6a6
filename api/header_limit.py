"""Bound request headers: at most ``CAREJOURNEY_API_MAX_HEADERS`` fields and
``CAREJOURNEY_API_MAX_HEADER_BYTES`` bytes in all, else 431 and the connection closed.

Two places, because either alone is not enough. ``BoundedHttpTools`` is the protocol
``carejourney serve`` runs uvicorn with: uvicorn's httptools parser reads a header of
any size (a 32 MB ``Authorization`` header was buffered in full), so this one counts the
bytes of the request head as they arrive and stops reading past the bound. ``HeaderLimit``
is the same rule as ASGI middleware, so the app refuses the same requests under any
server (and in-process tests).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.problems import instance_of, problem_response
from domain.settings import get_settings


def _detail(max_headers: int, max_bytes: int) -> str:
    return f"send at most {max_headers} header fields and {max_bytes} bytes of headers"


class HeaderLimit:
    def __init__(self, app: ASGIApp, max_headers: int, max_bytes: int) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(k) + len(v) + 4 for k, v in headers)
            if len(headers) > self.max_headers or size > self.max_bytes:
                response = problem_response(
                    "headers-too-large",
                    _detail(self.max_headers, self.max_bytes),
                    instance=instance_of(scope),
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over the bounds with 431
    as soon as it passes them (bytes counted after each parsed chunk, header fields as
    the parser reports them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_head_fields = settings.api_max_headers
        self.max_head_bytes = settings.api_max_header_bytes
        self._in_head = True
        self._head_bytes = 0
        self._head_fields = 0
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_fields = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_fields += 1

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        if self._head_fields > self.max_head_fields:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        body = json.dumps(
            {
                "type": "urn:carejourney:problem:headers-too-large",
                "title": "Request header fields too large",
                "status": 431,
                "detail": _detail(self.max_head_fields, self.max_head_bytes),
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
