"""Browser pages (signed in by exchanging an API key for a session cookie, docs/pages.md).

* ``/pages/sign-in``: the API key form (``session``); ``/pages/sign-out``;
* ``/pages/``: a coordinator's worklist (``worklist``), for other roles what they may open;
* ``/pages/journey/{nhs}``: one person's journey (coordinators, auditors; ``journey``);
* ``/pages/measures``: the measures dashboard (evaluators; ``dashboard``);
* ``/pages/outcomes``: a publisher's refusals and data-quality findings (``outcomes``).

Server-rendered HTML (Jinja2 templates in ``templates/``), inline SVG, one stylesheet
in ``static/``, no script and no build step. Not part of the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg import Connection

from api.deps import Db
from api.pages import dashboard, journey, outcomes, render, session, worklist
from api.pages.render import HERE, page
from api.pages.session import SignedIn

router = APIRouter(prefix="/pages", include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request, principal: SignedIn, conn: Db, coordinator: worklist.Asked = None
) -> Response:
    """Coordinators land on their worklist; other roles on what they may open."""
    if worklist.home_context(principal):
        return worklist.worklist_page(request, principal, conn, coordinator)
    return page(request, "home.html", {}, principal=principal)


router.include_router(session.router)
router.include_router(journey.router)
router.include_router(dashboard.router)
router.include_router(outcomes.router)
router.include_router(worklist.router)


def install(app: FastAPI) -> None:
    """Mount the pages, their stylesheet and their error pages on the app."""
    app.include_router(router)

    @app.get("/pages", include_in_schema=False)
    def pages_root() -> RedirectResponse:
        return RedirectResponse("/pages/", status_code=307)

    app.mount("/pages/static", StaticFiles(directory=HERE / "static"), name="pages-static")
    render.install(app)


def migrate(conn: Connection[Any]) -> None:
    """The pages' own table (sessions); idempotent, run at start-up."""
    session.migrate(conn)
