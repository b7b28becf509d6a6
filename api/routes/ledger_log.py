"""``GET /v1/log``: the ledger itself as a catch-up subscription, for systems that build
their own views (the pattern event stores offer as catch-up subscriptions).

Events come in ledger position order after ``after``, exactly as recorded (type, both
clocks, source, data, chain hashes), without identifiers: no NHS number (the ledger
never stores one) and no patient id; each event names its person by the keyed
pseudonym the measures use (HMAC-SHA-256 of the patient id under
``CAREJOURNEY_PSEUDONYM_KEY``), so a subscriber can group a person's events without
learning who they are, and a merge names the merged person the same way. Positions
follow commit order (the ledger appends under one lock), so a subscriber that resumes
with the last position it processed neither misses nor repeats an event.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api import problems
from api.deps import LedgerDep, SettingsDep, allow
from api.security import Principal, Role
from domain.journey import RecordedEvent
from domain.ledger import Ledger
from projections import log, subscription

router = APIRouter(prefix="/v1", tags=["ledger"], responses=problems.KEYED)

Subscriber = Annotated[
    Principal, Depends(allow(Role.AUDITOR, purpose="read the ledger's event log"))
]


@router.get(
    "/log",
    summary="The ledger's events after a position (catch-up subscription, no identifiers)",
    responses={
        200: {
            "description": "Events after the position.",
            "content": {
                "application/json": {
                    "example": {
                        "events": [
                            {
                                "position": 1,
                                "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
                                "person": "3f1c0e8a9b7d6c5e4f3a2b1c0d9e8f7a"
                                "6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
                                "version": 1,
                                "type": "PatientRegistered",
                                "schema_version": 1,
                                "occurred_at": "2026-03-02T10:15:00+00:00",
                                "recorded_at": "2026-03-02T10:15:02+00:00",
                                "source": {
                                    "organisation": "A81001",
                                    "system": "emis",
                                    "setting": "primary_care",
                                },
                                "recorded_by": None,
                                "data": {"practice": "A81001"},
                                "hash": "9c1f" + "0" * 60,
                                "prev_hash": None,
                            }
                        ],
                        "next_after": 1,
                        "head": 1,
                    }
                }
            },
        },
    },
)
async def ledger_log(
    principal: Subscriber,
    ledger: LedgerDep,
    settings: SettingsDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="Events after this position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most events returned.")] = 1000,
) -> dict[str, Any]:
    """``events`` in position order; continue with ``after=next_after``. ``head`` is the
    ledger's last position when read (``next_after == head``: caught up)."""
    key = settings.pseudonym_key
    events, head = await run_in_threadpool(_read, ledger, after, limit)
    return {
        "events": [subscription.public(e, key) for e in events],
        "next_after": events[-1].position if events else after,
        "head": head,
    }


def _read(ledger: Ledger, after: int, limit: int) -> tuple[list[RecordedEvent], int]:
    # The projections' own reader: tuple rows, a server-side cursor in one snapshot.
    with log.connect(ledger.database_url) as conn, conn.transaction():
        return subscription.after(conn, after, limit, log.state_loader(ledger.mapper))
