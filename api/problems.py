"""Every error is an RFC 9457 problem: ``application/problem+json`` with a stable ``type``.

Clients branch on ``type`` (a URN per kind of problem) and show ``detail``; validation
problems list every field at fault as ``errors: [{loc, msg}]`` with dotted paths
(``query.limit``, ``path.nhs``, ``data.to.setting``) in the same shape as the ledger's
batch results, so one error renderer serves both. Messages never echo an NHS number,
and ``instance`` is the route template (``/v1/patients/{nhs}/journey``), never the
concrete path: problems are shown, pasted into tickets and logged, and a person path
names the person. Unexpected errors are logged with the route template and the
exception's type and stack, never its message (which can quote a value) nor the path.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from api.asgi import HttpMiddleware, Watched
from domain.contract import FieldError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:carejourney:problem:"


class ProblemField(BaseModel):
    """One field at fault: a dotted path and what is wrong with it."""

    loc: str = Field(
        description="Dotted path: `query.limit`, `path.nhs`, into an envelope `data.to.setting`."
    )
    msg: str


@dataclass(frozen=True)
class Kind:
    """A kind of problem (``type`` is ``TYPE_PREFIX`` and its name in ``KINDS``), with
    everything said about it in one row."""

    status: int
    title: str
    # The detail (and fields at fault) the OpenAPI document shows for ``status``: given on
    # one kind of each documented status.
    example: str | None = None
    example_errors: tuple[FieldError, ...] = ()
    # An HTTPException of ``status`` is answered as this kind (of a status no kind takes:
    # as ``about:blank``).
    http: bool = False


KINDS: dict[str, Kind] = {
    "validation": Kind(
        422,
        "Request is not valid",
        "path.nhs: NHS number check digit does not match",
        (FieldError("path.nhs", "NHS number check digit does not match"),),
        http=True,
    ),
    "bad-request": Kind(400, "Bad request", "send 'Prefer: respond-async' to start an export"),
    "busy": Kind(
        429, "Too many requests", "an export of yours is still running: poll it or cancel it"
    ),
    "envelope-rejected": Kind(422, "Envelope rejected"),
    "unauthenticated": Kind(
        401,
        "Authentication required",
        "send an API key as 'Authorization: Bearer <key>'",
        http=True,
    ),
    "forbidden": Kind(
        403, "Not allowed", "role evaluator may not read person-level data", http=True
    ),
    "not-found": Kind(404, "Not found", "no journey is registered for this NHS number", http=True),
    "conflict": Kind(
        409, "Conflict", "event_id: event_id already recorded with different content", http=True
    ),
    "too-large": Kind(
        413, "Request too large", "request body is larger than 10485760 bytes", http=True
    ),
    "unsupported-media-type": Kind(
        415,
        "Unsupported media type",
        "send the body as application/json (Content-Type was text/plain)",
        http=True,
    ),
    "headers-too-large": Kind(431, "Request header fields too large", http=True),
    "not-ready": Kind(
        503, "Not ready", "projection coordinators lags the ledger by 20000 events (bound 10000)"
    ),
    "internal": Kind(500, "Internal error"),
}
_DOCUMENTED = {k.status: name for name, k in KINDS.items() if k.example is not None}
_FROM_HTTP = {k.status: name for name, k in KINDS.items() if k.http}


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem."""

    def __init__(
        self,
        kind: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.kind = kind
        self.title = KINDS[kind].title
        self.status = status or KINDS[kind].status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        super().__init__(detail or self.title)


def batch_size(count: int, most: int, *, empty: tuple[str, str], too_many: str) -> None:
    """A request body's batch holds one to ``most`` items (the batch maximum): none is
    422 (``empty``: the detail, and the body field's message), more than ``most`` is 413
    (``too_many``, formatted with ``most`` and ``count``)."""
    if not count:
        detail, field = empty
        raise ProblemError("validation", f"body: {detail}", errors=[FieldError("body", field)])
    if count > most:
        raise ProblemError("too-large", too_many.format(most=most, count=count))


def problem_body(
    kind: str,
    status: int,
    title: str,
    detail: str | None,
    instance: str | None,
    errors: list[FieldError] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return body


def documented(status: int, instance: str) -> dict[str, Any]:
    """The problem documented for ``status`` (``Kind.example``) as it would be answered at
    ``instance``: the examples the OpenAPI document shows are real answers' bodies."""
    name = _DOCUMENTED[status]
    kind = KINDS[name]
    errors = list(kind.example_errors)
    return problem_body(name, status, kind.title, kind.example, instance, errors)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    # The schema's example is the documented 422 as a person path answers it.
    model_config = ConfigDict(
        json_schema_extra={"examples": [documented(422, "/v1/patients/{nhs}/journey")]}
    )

    type: str = Field(description="URN naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(
        default=None,
        description="The route template of the request (`/v1/patients/{nhs}/journey`): "
        "never a concrete person path.",
    )
    errors: list[ProblemField] | None = Field(
        default=None, description="Every field at fault (validation problems)."
    )


def problem_response(
    kind: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status = status or KINDS[kind].status
    body = problem_body(kind, status, KINDS[kind].title, detail, instance, errors)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _loc(parts: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in parts)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.kind,
        exc.detail,
        instance=instance_of(request.scope),
        errors=exc.errors,
        status=exc.status,
        headers=exc.headers,
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(_loc(tuple(e.get("loc", ()))), str(e.get("msg", ""))) for e in exc.errors()
    ]
    detail = "; ".join(f"{e.loc}: {e.msg}" for e in errors)
    return problem_response(
        "validation", detail, instance=instance_of(request.scope), errors=errors
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _FROM_HTTP.get(exc.status_code)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    headers = dict(exc.headers) if exc.headers else None
    if kind is None:
        body = {
            "type": "about:blank",
            "title": phrase,
            "status": exc.status_code,
            "instance": instance_of(request.scope),
        }
        if detail:
            body["detail"] = detail
        return JSONResponse(
            body, status_code=exc.status_code, media_type=MEDIA_TYPE, headers=headers
        )
    return problem_response(
        kind, detail, instance=instance_of(request.scope), status=exc.status_code, headers=headers
    )


_PERSONAL = re.compile(r"[0-9][0-9 -]{4,}[0-9]")


def template_of(scope: Scope) -> str | None:
    """The path the caller used with each path parameter put back as ``{name}``
    (``/pages/journey/{nhs}``), or None when no route matched. Built from the path, not
    the route object, because a route included from a sub-router keeps its own path
    (``/journey/{nhs}``) without the prefix the caller saw."""
    if scope.get("route") is None:
        return None
    names = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    segments = str(scope.get("path", "")).split("/")
    return "/".join("{" + names[s] + "}" if s in names else s for s in segments)


def instance_of(scope: Scope) -> str:
    """The route template of the request; for a request no route matched, its path
    with every run of six or more digits replaced (it may be a mistyped NHS number)."""
    template = template_of(scope)
    if template is not None:
        return template
    return _PERSONAL.sub("{redacted}", str(scope.get("path", "")))


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    """Log an unhandled error by route template, exception type and stack only."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "unhandled %s on %s %s\n%s",
        type(exc).__name__,
        scope.get("method", "-"),
        instance_of(scope),
        stack,
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log_unexpected(request.scope, exc)
    return problem_response(
        "internal", "the server failed; the error was logged", instance=instance_of(request.scope)
    )


class CatchAll(HttpMiddleware):
    """Answer every unhandled error with a 500 problem (an HTML page under ``/pages``)
    without re-raising it: Starlette's outermost error middleware would re-raise, and the
    server would then log the exception's message, which can quote a person's data."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        watched = Watched(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # the last line of defence: log safely, answer 500
            log_unexpected(scope, exc)
            if watched.started:
                return
            if str(scope.get("path", "")).startswith("/pages"):
                from fastapi.responses import HTMLResponse

                html = HTMLResponse(
                    "<!doctype html><title>Error</title><h1>Something went wrong</h1>"
                    "<p>The server failed; the error was logged.</p>",
                    status_code=500,
                    headers={"Cache-Control": "no-store"},
                )
                await html(scope, receive, send)
                return
            response = problem_response(
                "internal", "the server failed; the error was logged", instance=instance_of(scope)
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Route every kind of error through a problem response."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems an operation can answer with, with examples."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {
            "description": HTTPStatus(status).phrase,
            "content": {
                MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": documented(status, "/v1/..."),
                }
            },
        }
    return out


# What every route that takes an API key can answer: 401 without a valid key, 403 for a
# role without the right, 422 for a request that is not valid. A router of such routes
# declares them once (``APIRouter(responses=problems.KEYED)``); each route adds its own.
KEYED = responses(401, 403, 422)
# And a route that reads one person's records: 404 when no journey is registered.
PERSON = responses(401, 403, 404, 422)
