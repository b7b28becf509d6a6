"""The transparency log: the latest signed checkpoint and RFC 9162 proofs.

Nothing here is about a person (hashes only), so every role with a key may ask: an
auditor fetches the checkpoint daily and keeps it; anyone holding a bundle or an older
checkpoint asks for the proofs that tie it to a newer one. The checkpoint is served as
the C2SP signed note itself (``text/plain``), byte for byte what was signed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from api import problems
from api.deps import LedgerDep, allow
from api.models.transparency import ConsistencyProof, InclusionProof
from api.problems import ProblemError
from api.security import Principal, Role
from domain import transparency

router = APIRouter(prefix="/v1/transparency", tags=["transparency"])

Reader = Annotated[
    Principal,
    Depends(
        allow(
            Role.AUDITOR,
            Role.PUBLISHER,
            Role.COORDINATOR,
            Role.EVALUATOR,
            purpose="read the transparency log",
        )
    ),
]


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "A C2SP tlog-checkpoint wrapped as a C2SP signed note.",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "carejourney.local/ledger\n2\n"
                    "LMp14Ybc0oC7ref4q1Jeghp/e0z/d+p5dKX2By7GlcA=\n\n"
                    "\u2014 carejourney.local/ledger mfu3xBZcBAoQVVi7WwF2c9t5kAyx0Sa/GRth95q5oO8X"
                    "EXh224ONhlwn9US4eMcLObHW5bdHj3ST3/OkIfCd06oQzgw=\n",
                }
            },
        },
        **problems.responses(401, 403, 404),
    },
)
def latest_checkpoint(_: Reader, ledger: LedgerDep) -> PlainTextResponse:
    """The latest C2SP checkpoint, byte for byte as signed (verify it with the log's
    vkey; keep it: a later consistency proof shows the log only grew from it)."""
    with ledger.connection() as conn:
        found = transparency.latest_checkpoint(conn)
    if found is None:
        raise ProblemError("not-found", "no checkpoint has been issued yet")
    return PlainTextResponse(found.note, headers={"X-Tree-Size": str(found.size)})


@router.get(
    "/inclusion",
    summary="Inclusion proof of an event",
    response_model=InclusionProof,
    responses=problems.responses(401, 403, 404, 422),
)
def inclusion(
    _: Reader,
    ledger: LedgerDep,
    position: Annotated[int, Query(ge=1, le=2**62, description="The event's ledger position.")],
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=2**62, description="Tree size (default: the latest checkpoint's)."),
    ] = None,
) -> dict[str, Any]:
    """RFC 9162 §2.1.3 PATH of the event's leaf in the tree of ``tree_size`` leaves."""
    with ledger.connection() as conn:
        try:
            return transparency.inclusion_answer(conn, position, tree_size)
        except (transparency.TreeError, ValueError) as exc:
            raise ProblemError("not-found", str(exc)) from None


@router.get(
    "/consistency",
    summary="Consistency proof between two tree sizes",
    response_model=ConsistencyProof,
    responses=problems.responses(401, 403, 404, 422),
)
def consistency(
    _: Reader,
    ledger: LedgerDep,
    old: Annotated[int, Query(alias="from", ge=0, le=2**62, description="Older tree size.")],
    new: Annotated[int, Query(alias="to", ge=0, le=2**62, description="Newer tree size.")],
) -> dict[str, Any]:
    """RFC 9162 §2.1.4 PROOF(from, D[to]): the log at ``to`` extends the log at ``from``."""
    with ledger.connection() as conn:
        try:
            return transparency.consistency_answer(conn, old, new)
        except (transparency.TreeError, ValueError) as exc:
            raise ProblemError("not-found", str(exc)) from None
