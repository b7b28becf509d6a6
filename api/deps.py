"""What routes are given: the ledger, a database connection, the caller, the person read.

Routes declare what they need with these ``Annotated`` aliases and hold no plumbing.
Dependencies that do no I/O are ``async`` so FastAPI runs them on the event loop: each
sync dependency is a hop to the thread pool, and on a busy machine the hops, not the
work, dominate a fast read.

* ``Db``: one pooled connection per request (returned to the pool when the route ends,
  before the response is sent);
* ``allow(*roles)``: the authenticated principal, refused with 403 unless its role is
  listed (``admin`` always passes);
* ``person_read(*roles)``: the person named by ``{nhs}`` in the path, resolved through
  the identity register, checked against the caller's organisations for coordinators,
  and written to the access log, all before the route reads anything.
"""


from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import Connection
from psycopg.rows import DictRow

from api import access_log
from api.care_relationship import has_care_relationship
from api.problems import ProblemError
from api.security import KeyRing, Principal, Role
from domain import identity, merges
from domain.contract import FieldError
from domain.ledger import Ledger
from domain.nhs_number import check_nhs_number
from domain.settings import Settings

EXAMPLE_NHS = "9434765919"

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="API key",
    description="An API key from `carejourney keys create ROLE [--org CODE]`.",
)


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def db_connection(ledger: Annotated[Ledger, Depends(get_ledger)]) -> Iterator[Connection[DictRow]]:
    with ledger.connection() as conn:
        yield conn


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Connection[DictRow], Depends(db_connection, scope="function")]


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the bearer key, or 401 saying what is missing or wrong."""
    challenge = {"WWW-Authenticate": 'Bearer realm="carejourney"'}
    if credentials is None:
        raise ProblemError("unauthenticated",
                           "send an API key as 'Authorization: Bearer <key>'", headers=challenge)
    keyring: KeyRing = request.app.state.keyring
    principal = keyring.principal(credentials.credentials)
    if principal is None:
        raise ProblemError("unauthenticated", "the API key is not known (or was revoked)",
                           headers=challenge)
    return principal


def allow(*roles: Role, purpose: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting the listed roles (and admin); others get 403 with the reason."""
    admitted = frozenset((*roles, Role.ADMIN))

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in admitted:
            if principal.role is Role.EVALUATOR and purpose.startswith("read person"):
                reason = "evaluators never get person-level data"
            else:
                names = ", ".join(sorted(r.value for r in admitted))
                reason = f"role {principal.role.value} may not {purpose} (allowed: {names})"
            raise ProblemError("forbidden", reason)
        return principal

    return check


@dataclass(frozen=True, slots=True)
class PersonRef:
    """The person a request reads, after the access check and the access-log write."""

    nhs_number: str
    patient_id: UUID
    principal: Principal


def endpoint_label(request: Request) -> str:
    """The route template, never the concrete path (which holds an NHS number)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def valid_nhs(value: str, loc: str) -> str:
    try:
        return check_nhs_number(value)
    except ValueError as exc:
        raise ProblemError("validation", f"{loc}: {exc}", errors=[FieldError(loc, str(exc))]
                           ) from None


def log_reads(conn: Connection[DictRow], request: Request, principal: Principal,
              patients: list[UUID]) -> None:
    access_log.record(conn, principal, endpoint_label(request), patients)


NhsPath = Annotated[str, Path(
    description="The person's NHS number (10 digits, modulus-11 check digit).",
    examples=[EXAMPLE_NHS], openapi_examples={"valid": {"value": EXAMPLE_NHS}},
)]


def person_read(*roles: Role, purpose: str) -> Callable[..., PersonRef]:
    """Resolve ``{nhs}``: 422 for a bad number, 404 if unknown, 403 outside the caller's
    care relationships (coordinators), then one access-log row, then the route runs."""
    admit = allow(*roles, purpose=purpose)

    def resolve(
        request: Request,
        nhs: NhsPath,
        principal: Annotated[Principal, Depends(admit)],
        conn: Db,
    ) -> PersonRef:
        return person_ref(conn, request, principal, nhs)

    return resolve


def person_ref(conn: Connection[DictRow], request: Request, principal: Principal,
               nhs: str) -> PersonRef:
    """``person_read``'s checks and access-log row for an already admitted principal
    (the pages call it with their session's principal)."""
    number = valid_nhs(nhs, "path.nhs")
    patient = identity.lookup(conn, number)
    if patient is None:
        raise ProblemError("not-found", "no journey is registered for this NHS number")
    patient = merges.effective(conn, patient)  # the survivor while a merge stands
    if principal.role is Role.COORDINATOR and not has_care_relationship(
            conn, patient, principal.organisations):
        raise ProblemError(
            "forbidden",
            "this person has no care relationship with your organisation "
            f"({', '.join(sorted(principal.organisations))})",
        )
    log_reads(conn, request, principal, [patient])
    return PersonRef(number, patient, principal)
