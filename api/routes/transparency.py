"""The transparency log: the latest signed checkpoint, RFC 9162 proofs, and the tree as
C2SP tlog-tiles (``/v1/transparency/tlog/``: checkpoint, tiles, entry bundles).

Nothing here is about a person (hashes only), so every role with a key may ask: an
auditor fetches the checkpoint daily and keeps it; anyone holding a bundle or an older
checkpoint asks for the proofs that tie it to a newer one. The checkpoint is served as
the C2SP signed note itself (``text/plain``), byte for byte what was signed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse, Response

from api import problems
from api.deps import LedgerDep, allow
from api.models.transparency import ConsistencyProof, InclusionProof
from api.problems import ProblemError
from api.security import Principal, Role
from domain import transparency
from domain.ledger import Ledger

# Every route here takes a key and answers 404 where the log has no such tree or entry.
router = APIRouter(
    prefix="/v1/transparency", tags=["transparency"], responses=problems.responses(401, 403, 404)
)

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


SIGNED_CHECKPOINT = {
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
}
# Both checkpoint routes answer with the signed note itself, as text.
AS_SIGNED_NOTE: dict[str, Any] = {
    "response_class": PlainTextResponse,
    "responses": {200: SIGNED_CHECKPOINT},
}


@router.get("/checkpoint", summary="The latest signed checkpoint", **AS_SIGNED_NOTE)
def latest_checkpoint(_: Reader, ledger: LedgerDep) -> PlainTextResponse:
    """The latest C2SP checkpoint, byte for byte as signed (verify it with the log's
    vkey; keep it: a later consistency proof shows the log only grew from it)."""
    with ledger.connection() as conn:
        found = transparency.latest_checkpoint(conn)
    if found is None:
        raise ProblemError("not-found", "no checkpoint has been issued yet")
    return PlainTextResponse(found.note, headers={"X-Tree-Size": str(found.size)})


# The RFC 9162 proofs (included in ``router`` below them): each takes tree sizes (or a
# position), so each can be 422 for one out of range.
proofs = APIRouter(responses=problems.responses(422))


@proofs.get("/inclusion", summary="Inclusion proof of an event", response_model=InclusionProof)
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
    return _proof(ledger, transparency.inclusion_answer, position, tree_size)


@proofs.get(
    "/consistency",
    summary="Consistency proof between two tree sizes",
    response_model=ConsistencyProof,
)
def consistency(
    _: Reader,
    ledger: LedgerDep,
    old: Annotated[int, Query(alias="from", ge=0, le=2**62, description="Older tree size.")],
    new: Annotated[int, Query(alias="to", ge=0, le=2**62, description="Newer tree size.")],
) -> dict[str, Any]:
    """RFC 9162 §2.1.4 PROOF(from, D[to]): the log at ``to`` extends the log at ``from``."""
    return _proof(ledger, transparency.consistency_answer, old, new)


def _proof(
    ledger: Ledger, answer: Callable[..., dict[str, Any]], *sizes: int | None
) -> dict[str, Any]:
    """The proof, or 404 saying why the tree has none (a size past the log, a position
    outside the tree)."""
    with ledger.connection() as conn:
        try:
            return answer(conn, *sizes)
        except (transparency.TreeError, ValueError) as exc:
            raise ProblemError("not-found", str(exc)) from None


router.include_router(proofs)


# -- C2SP tlog-tiles -------------------------------------------------------------------------
# The same tree as static-style resources (c2sp.org/tlog-tiles), so standard tiled-log
# clients (monitors, witnesses) compute any proof from them: prefix
# ``<base>/v1/transparency/tlog``. Tiles and bundles never change once served (complete
# nodes are immutable), so they may be cached for long; the checkpoint may not.

TILE_PATH = re.compile(
    r"(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)
IMMUTABLE = "private, max-age=31536000, immutable"  # private: it takes an API key
OCTETS = "application/octet-stream"


def parse_tile_path(text: str) -> tuple[int | None, int, int]:
    """``(level, index, width)`` of ``<L>/<N>[.p/<W>]`` (level None: ``entries/...``),
    only in the spec's one spelling of each (no leading zeroes, ``x``-led groups)."""
    found = TILE_PATH.fullmatch(text)
    if found is None:
        raise ValueError("not a tile path: <L>/<N>[.p/<W>] or entries/<N>[.p/<W>]")
    index = int(found["index"].replace("x", "").replace("/", ""))
    partial = found["width"] is not None
    width = int(found["width"]) if partial else transparency.TILE_WIDTH
    if transparency.tile_index_path(index) != found["index"] or (partial and width > 255):
        raise ValueError("not a tile path: the index or width is not spelt as the spec says")
    level = None if found["level"] == "entries" else int(found["level"])
    return level, index, width


@router.get("/tlog/checkpoint", summary="tlog-tiles: the latest checkpoint", **AS_SIGNED_NOTE)
def tlog_checkpoint(principal: Reader, ledger: LedgerDep) -> PlainTextResponse:
    """``<prefix>/checkpoint`` of C2SP tlog-tiles: the latest signed note (as
    ``/v1/transparency/checkpoint``), never cached for long."""
    answer = latest_checkpoint(principal, ledger)
    answer.headers["Cache-Control"] = "no-cache"
    answer.headers["Content-Type"] = "text/plain; charset=utf-8"
    return answer


@router.get(
    "/tlog/tile/{tile_path:path}",
    summary="tlog-tiles: a Merkle tree tile or an entry bundle",
    response_class=Response,
    responses={
        200: {
            "description": "A tile (concatenated 32-byte hashes) or an entry bundle "
            "(uint16-length-prefixed leaf data: each event's 32-byte chain hash).",
            "content": {
                OCTETS: {
                    "schema": {"type": "string", "format": "binary"},
                    # A partial tile of width 1 is one 32-byte hash (raw bytes; hex here).
                    "example": "2c ca 75 e1 86 dc d2 80 bb ad e7 f8 ab 52 5e 82 1a 7f 7b 4c"
                    " ff 77 ea 79 74 a5 f6 07 2e c6 95 c0",
                }
            },
        },
        **problems.responses(422),
    },
)
def tlog_tile(
    _: Reader,
    ledger: LedgerDep,
    tile_path: Annotated[
        str,
        Path(
            max_length=200,
            description="`<L>/<N>[.p/<W>]` (a tile) or `entries/<N>[.p/<W>]` (an entry "
            "bundle), as c2sp.org/tlog-tiles spells them, e.g. `0/x001/234.p/17`.",
        ),
    ],
) -> Response:
    """``<prefix>/tile/...`` of C2SP tlog-tiles: level 0 holds the leaf hashes, level L
    the hashes of the complete subtrees of ``256**L`` leaves; a partial tile (``.p/W``)
    the first W of them. 404 for a tile the tree does not hold (yet)."""
    try:
        level, index, width = parse_tile_path(tile_path)
        with ledger.connection() as conn:
            if level is None:
                body = transparency.entry_bundle(conn, index, width)
            else:
                body = transparency.tile(conn, level, index, width)
    except (ValueError, transparency.TreeError) as exc:
        raise ProblemError("not-found", str(exc)) from None
    return Response(body, media_type=OCTETS, headers={"Cache-Control": IMMUTABLE})
