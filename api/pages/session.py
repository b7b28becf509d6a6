"""Browser sign-in: an API key exchanged for a short-lived, HttpOnly session cookie.

Why sessions and not the key itself: a browser cannot send an ``Authorization`` header
on a plain link, and a key kept in a cookie would live as long as the key. The sign-in
form posts the key once; the server checks it like any API call, then stores only the
SHA-256 of a fresh random session token with the SHA-256 of the key and an expiry
(``CAREJOURNEY_SESSION_MINUTES``, default 30) in ``page_sessions``, and sets the token
as the ``cj_session`` cookie: ``HttpOnly`` (no script can read it), ``SameSite=Strict``
(no other site can make the browser send it), ``Path=/pages`` (the JSON API never
accepts it, so it cannot be used to publish events), ``Secure`` over HTTPS. Every page
request re-resolves the key by its digest, so a revoked key ends its sessions at once;
signing out deletes the session row. Sessions live in PostgreSQL so every API worker
sees them.

Form posts must come from this site (``Sec-Fetch-Site``/``Origin``, see ``same_origin``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg import Connection
from psycopg.rows import DictRow

from api import access_log
from api.deps import Db
from api.pages.render import PageProblem, PageRedirect, page
from api.security import KeyRing, Principal, Role, hash_key
from domain.database import create_tables

COOKIE = "cj_session"
PATH = "/pages"
MAX_FORM_BYTES = 4096

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS page_sessions (
        token_sha256  text PRIMARY KEY,
        key_sha256    text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        expires_at    timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS page_sessions_expires_idx ON page_sessions (expires_at)",
)

router = APIRouter()


def migrate(conn: Connection[Any]) -> None:
    create_tables(conn, "pages", SCHEMA)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def current(request: Request, conn: Connection[DictRow]) -> Principal | None:
    """The principal of the request's session cookie, if it is live and its key is."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    row = conn.execute(
        "SELECT key_sha256 FROM page_sessions WHERE token_sha256 = %s AND expires_at > now()",
        (_digest(token),),
    ).fetchone()
    if row is None:
        return None
    keyring: KeyRing = request.app.state.keyring
    return keyring.principal_for_digest(row["key_sha256"])


def signed_in(request: Request, conn: Db) -> Principal:
    """A page's caller; anyone without a live session is sent to sign in first."""
    principal = current(request, conn)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise PageRedirect(f"{PATH}/sign-in?next={quote(target, safe='')}")
    request.scope.setdefault("state", {})[access_log.PRINCIPAL_KEY] = principal
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def require(principal: Principal, *roles: Role, what: str) -> None:
    """Only the listed roles (and admin) see ``what``; others get a 403 page saying so."""
    if principal.role not in (*roles, Role.ADMIN):
        allowed = ", ".join(sorted(r.value for r in (*roles, Role.ADMIN)))
        raise PageProblem(
            403,
            f"Your role ({principal.role.value}) may not see {what}. It is for: {allowed}.",
            principal,
        )


def _safe_next(value: str | None) -> str:
    """Only this site's pages: never an absolute or protocol-relative URL."""
    if not value or not value.startswith(PATH + "/") or value.startswith("//"):
        return PATH + "/"
    parts = urlsplit(value)
    return PATH + "/" if parts.scheme or parts.netloc else value


def same_origin(request: Request) -> bool:
    """A browser says where a form post comes from: ``Sec-Fetch-Site`` (always, in
    current browsers), else ``Origin`` (``null`` under our no-referrer policy, so it
    only counts when it names a site). Clients that send neither (curl) are allowed:
    they hold the key anyway."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def form_fields(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PageProblem(413, "That form is too large.")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return page(request, "sign_in.html", {"next": _safe_next(next), "error": None})


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """Check the key; on success start a session and go where the user was going."""
    if not same_origin(request):
        raise PageProblem(403, "Sign-in must come from this site's own form.")
    form = await form_fields(request)
    target = _safe_next(form.get("next"))
    key = form.get("api_key", "").strip()
    keyring: KeyRing = request.app.state.keyring
    principal = keyring.principal(key) if key else None
    if principal is None:
        return page(
            request,
            "sign_in.html",
            {"next": target, "error": "That API key is not known (or was revoked)."},
            status=401,
        )
    token = secrets.token_urlsafe(32)
    minutes = request.app.state.settings.session_minutes
    expires = datetime.now(UTC) + timedelta(minutes=minutes)
    ledger = request.app.state.ledger
    with ledger.connection() as conn, conn.transaction():
        conn.execute("DELETE FROM page_sessions WHERE expires_at < now()")
        conn.execute(
            "INSERT INTO page_sessions (token_sha256, key_sha256, expires_at) VALUES (%s, %s, %s)",
            (_digest(token), hash_key(key), expires),
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=minutes * 60,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request, conn: Db) -> Response:
    if not same_origin(request):
        raise PageProblem(403, "Sign-out must come from this site's own form.")
    token = request.cookies.get(COOKIE)
    if token:
        conn.execute("DELETE FROM page_sessions WHERE token_sha256 = %s", (_digest(token),))
    response = RedirectResponse(f"{PATH}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response
