"""What routes are given: the ledger, a database connection, the caller, the person read.

Routes declare what they need with these ``Annotated`` aliases and hold no plumbing.
Dependencies that do no I/O are ``async`` so FastAPI runs them on the event loop: each
sync dependency is a hop to the thread pool, and on a busy machine the hops, not the
work, dominate a fast read.

* ``Db``: one pooled connection per request (returned to the pool when the route ends,
  before the response is sent);
* ``allow(*roles)``: the authenticated principal, refused with 403 unless its role is
  listed (``admin`` always passes);
* ``person_read(*roles)``: the admitted read of the person named by ``{nhs}``; its
  ``fetch(read)`` resolves them through the identity register and standing merges,
  checks the caller's organisations for coordinators, writes the access-log row and
  runs the route's read, in one transaction on one pooled connection, in one hop to the
  thread pool; ``person_opened(*roles)`` gives the checked, logged person to routes
  that read through the ledger instead.
"""

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import Connection
from psycopg.rows import DictRow
from starlette.concurrency import run_in_threadpool

from api import access_log
from api.appends import Appender
from api.care_relationship import DEFAULT_DAYS, has_care_relationship
from api.problems import ProblemError, instance_of
from api.security import KeyRing, Principal, Role
from domain import merges
from domain.contract import FieldError
from domain.ledger import Ledger
from domain.nhs_number import check_nhs_number
from domain.settings import Settings

EXAMPLE_NHS = "9434765919"
T = TypeVar("T")

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


async def get_appender(request: Request) -> Appender:
    """The process's append queue (``api/appends.py``), made on first use."""
    state = request.app.state
    appender: Appender | None = getattr(state, "appender", None)
    if appender is None:
        appender = state.appender = Appender(state.ledger)
    return appender


def db_connection(ledger: Annotated[Ledger, Depends(get_ledger)]) -> Iterator[Connection[DictRow]]:
    with ledger.connection() as conn:
        yield conn


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
AppenderDep = Annotated[Appender, Depends(get_appender)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Connection[DictRow], Depends(db_connection, scope="function")]


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the bearer key, or 401 saying what is missing or wrong."""
    challenge = {"WWW-Authenticate": 'Bearer realm="carejourney"'}
    if credentials is None:
        raise ProblemError(
            "unauthenticated", "send an API key as 'Authorization: Bearer <key>'", headers=challenge
        )
    keyring: KeyRing = request.app.state.keyring
    principal = keyring.principal(credentials.credentials)
    if principal is None:
        raise ProblemError(
            "unauthenticated", "the API key is not known (or was revoked)", headers=challenge
        )
    request.scope.setdefault("state", {})[access_log.PRINCIPAL_KEY] = principal
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
    return f"{request.method} {instance_of(request.scope)}"


def valid_nhs(value: str, loc: str) -> str:
    try:
        return check_nhs_number(value)
    except ValueError as exc:
        raise ProblemError(
            "validation", f"{loc}: {exc}", errors=[FieldError(loc, str(exc))]
        ) from None


def log_reads(
    conn: Connection[DictRow], request: Request, principal: Principal, patients: list[UUID]
) -> None:
    access_log.record(conn, principal, endpoint_label(request), patients)


NhsPath = Annotated[
    str,
    Path(
        description="The person's NHS number (10 digits, modulus-11 check digit).",
        examples=[EXAMPLE_NHS],
        openapi_examples={"valid": {"value": EXAMPLE_NHS}},
    ),
]


@dataclass(frozen=True, slots=True)
class PersonRead:
    """A person-level read that is admitted (valid number, allowed role) but not yet done.

    ``fetch(read)`` does the rest in one worker-thread hop and one transaction: resolve
    the number (404 if unknown), check the care relationship (coordinators, 403), write
    the access-log row, run ``read(conn, patient_id)`` and commit, so the log row is
    committed before the answer leaves. One hop, not one per step, because on a busy
    server the hops between the event loop and the thread pool (and the GIL hand-offs
    they cost) outweigh the few milliseconds of SQL.
    """

    ledger: Ledger
    nhs_number: str
    principal: Principal
    endpoint: str
    state: dict[str, Any] = field(default_factory=dict)

    async def fetch(self, read: Callable[[Connection[DictRow], UUID], T]) -> T:
        return await run_in_threadpool(self._fetch, read)

    def _fetch(self, read: Callable[[Connection[DictRow], UUID], T]) -> T:
        with self.ledger.connection() as conn:
            patient = admit_person(
                conn,
                self.principal,
                self.endpoint,
                self.nhs_number,
                self.state,
                days=self.ledger.settings.care_relationship_days,
            )
            return read(conn, patient)

    async def open(self) -> PersonRef:
        """The checks and the committed access-log row alone, for routes that then read
        through the ledger on their own connection."""
        patient = await self.fetch(lambda _conn, patient: patient)
        return PersonRef(self.nhs_number, patient, self.principal)

    def admit(self) -> PersonRef:
        """``open`` for a route already on a worker thread. Called in the route's body,
        after FastAPI validated every parameter, so a refused request logs no read."""
        patient = self._fetch(lambda _conn, patient: patient)
        return PersonRef(self.nhs_number, patient, self.principal)


def person_read(*roles: Role, purpose: str) -> Callable[..., Awaitable[PersonRead]]:
    """A dependency giving the admitted ``PersonRead`` of ``{nhs}``: 422 for a bad
    number and 401/403 for the caller here, the rest when the route fetches."""
    admit = allow(*roles, purpose=purpose)

    async def admitted(
        request: Request,
        nhs: NhsPath,
        principal: Annotated[Principal, Depends(admit)],
        ledger: LedgerDep,
    ) -> PersonRead:
        return PersonRead(
            ledger,
            valid_nhs(nhs, "path.nhs"),
            principal,
            endpoint_label(request),
            request.scope.setdefault("state", {}),
        )

    return admitted


def person_opened(*roles: Role, purpose: str) -> Callable[..., Awaitable[PersonRef]]:
    """``person_read`` then ``PersonRead.open``: the person, checked and logged."""
    read = person_read(*roles, purpose=purpose)

    async def opened(person: Annotated[PersonRead, Depends(read)]) -> PersonRef:
        return await person.open()

    return opened


def person_ref(
    conn: Connection[DictRow], request: Request, principal: Principal, nhs: str, via: str = "page"
) -> PersonRef:
    """The same checks and access-log row on the caller's connection, for an already
    admitted principal (the pages call it with their session's principal)."""
    number = valid_nhs(nhs, "path.nhs")
    state = request.scope.setdefault("state", {})
    state[access_log.PRINCIPAL_KEY] = principal
    days = request.app.state.settings.care_relationship_days
    patient = admit_person(
        conn, principal, endpoint_label(request), number, state, via=via, days=days
    )
    return PersonRef(number, patient, principal)


NOT_IN_CARE = "no journey in your organisation's care is registered for this NHS number"


def admit_person(
    conn: Connection[DictRow],
    principal: Principal,
    endpoint: str,
    nhs_number: str,
    state: dict[str, Any] | None = None,
    via: str = "api",
    days: int = DEFAULT_DAYS,
) -> UUID:
    """The person now (the survivor while a merge stands), after the 404 and care-
    relationship checks, with the access-log row written on ``conn``.

    A coordinator gets the same 404 for a number nobody registered and for a registered
    person outside their organisation's care: a 403 for the second would tell anyone
    holding a coordinator key who is registered. The refusal is still logged with the
    person (``state``, written by ``access_log.RefusalLog``)."""
    patient = merges.person_now(conn, nhs_number)
    if principal.role is Role.COORDINATOR:
        if patient is None or not has_care_relationship(
            conn, patient, principal.organisations, days
        ):
            if state is not None and patient is not None:
                state[access_log.PATIENT_KEY] = patient
            raise ProblemError("not-found", NOT_IN_CARE)
    elif patient is None:
        raise ProblemError("not-found", "no journey is registered for this NHS number")
    if state is not None:
        state[access_log.PATIENT_KEY] = patient
    access_log.record(conn, principal, endpoint, [patient], via=via)
    return patient
