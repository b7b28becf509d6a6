"""Rendering pages: the Jinja2 templates, the headers every page carries, page errors.

Pages are plain server-rendered HTML with inline SVG charts: no script runs at all, so
the Content-Security-Policy allows none (``default-src 'none'``), styles come only from
this server's own stylesheet, and nothing is framed. Person pages are never cached and
never leak their URL (which holds an NHS number) to another site.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from api import times
from api.security import Principal, Role

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# What each role is shown in the navigation (and may open).
NAVIGATION: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("/pages/journey", "Journey", frozenset({Role.COORDINATOR, Role.AUDITOR, Role.ADMIN})),
    ("/pages/measures", "Measures", frozenset({Role.EVALUATOR, Role.ADMIN})),
    ("/pages/outcomes", "Outcomes", frozenset({Role.PUBLISHER, Role.ADMIN})),
)


class PageProblem(Exception):
    """Answer with an HTML error page."""

    def __init__(self, status: int, message: str, principal: Principal | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.principal = principal


class PageRedirect(Exception):
    """Answer with a 303 to ``location`` (e.g. the sign-in form)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


# The form fields of a page over a period, or over the ledger as known at a time: text
# as typed, parsed by the page itself (``query_day``, ``times.aware``) so that a bad field
# is a 422 page that says which.
FromDay = Annotated[str | None, Query(alias="from", max_length=10)]
ToDay = Annotated[str | None, Query(alias="to", max_length=10)]
KnownAtText = Annotated[str | None, Query(max_length=40)]


def query_day(value: str | None, name: str) -> date | None:
    """A ``from``/``to`` query day of a page: a clear 422 page for anything but YYYY-MM-DD."""
    if not value:
        return None
    try:
        return times.day(value)
    except times.TimeError as exc:
        raise PageProblem(422, f"{name}: {exc}") from None


def navigation(principal: Principal | None) -> list[tuple[str, str]]:
    if principal is None:
        return []
    return [(href, label) for href, label, roles in NAVIGATION if principal.role in roles]


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    """A template rendered with the shared context and the page headers."""
    full = {
        "principal": principal,
        "nav": navigation(principal),
        "zone": request.app.state.settings.timezone,
        **context,
    }
    response = templates.TemplateResponse(request, template, full, status_code=status)
    response.headers.update(HEADERS)
    return response


def _local(value: datetime | str | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    from zoneinfo import ZoneInfo

    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(ZoneInfo(zone)).strftime(fmt)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _definition(text: str) -> Markup:
    """A measure's docstring as HTML: paragraphs, ``code`` and *emphasis*."""
    out = []
    for paragraph in text.split("\n\n"):
        html = str(escape(" ".join(line.strip() for line in paragraph.splitlines())))
        html = re.sub(r"``(.+?)``", r"<code>\1</code>", html)
        html = re.sub(r"(?<![\w*])\*(\w[^*]*?)\*(?![\w*])", r"<em>\1</em>", html)
        out.append(f"<p>{html}</p>")
    return Markup("".join(out))


templates.env.filters["local"] = _local
templates.env.filters["number"] = _number
templates.env.filters["definition"] = _definition


def install(app: FastAPI) -> None:
    """Page errors and redirects as HTML, not problem JSON."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageProblem)
        return page(
            request,
            "error.html",
            {"status": exc.status, "message": exc.message},
            status=exc.status,
            principal=exc.principal,
        )

    async def on_redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageRedirect)
        return RedirectResponse(exc.location, status_code=303, headers=HEADERS)

    app.add_exception_handler(PageProblem, on_problem)
    app.add_exception_handler(PageRedirect, on_redirect)
