"""What happened to what publishers sent: their refusals, kept, and the data-quality
findings about their recorded events (``GET /v1/publishers/me/outcomes``, its page).

Why a table: a refused envelope or message is not an event, so the ledger keeps nothing
of it, and the sender's copy of the answer (HTTP response, ACK) is easily lost in an
interface engine's logs. Every refusal (rejected or conflict) through HTTP
(``POST /v1/events``, ``POST /v1/adt``), MLLP and ``adt import`` is kept here after its
batch: when, which way in, the organisation it is attributed to, the event id and the
sender's own message id (MSH-10 for HL7 v2), the trigger, and the reasons. Never the
message: reasons name fields, not values, so no identifier is kept. (Kafka refusals are
kept with their bytes in ``consumer_rejections`` and sent to the dead-letter topic:
docs/kafka.md.)

A refusal is attributed to the organisation it claimed when the sender may publish for
it, else to the sender's first organisation; an HL7 message to the ODS code its sending
facility maps to (``CAREJOURNEY_ADT_FACILITIES``), else to nobody (``NULL``: admins
see those). Rows are written after the batch's own transaction, so a crash between the
two loses the row, never an event.

Data-quality findings come from the ``quality`` projection (``quality_findings``),
attributed to the organisation that published the event they are about.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from consumers import acknowledgement
from consumers.adt_ingest import MessageResult
from consumers.hl7v2 import namespace
from domain.contract import FieldError
from domain.database import ensure_tables
from domain.ledger import ItemResult, Ledger
from domain.settings import Settings

log = logging.getLogger(__name__)

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS publisher_outcomes (
        id            bigserial PRIMARY KEY,
        received_at   timestamptz NOT NULL DEFAULT now(),
        organisation  text,
        channel       text NOT NULL,
        status        text NOT NULL,
        event_id      uuid,
        message_id    text,
        trigger       text,
        reason        text NOT NULL,
        errors        jsonb NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS publisher_outcomes_organisation_idx"
    " ON publisher_outcomes (organisation, id)",
)
CHANNELS = ("http", "http-adt", "mllp", "adt-import")


@dataclass(frozen=True, slots=True)
class Refusal:
    organisation: str | None
    channel: str
    status: str
    event_id: str | None
    message_id: str | None
    trigger: str | None
    errors: tuple[FieldError, ...]


def migrate(ledger: Ledger) -> None:
    """Create the table (idempotent; once per database per process)."""
    ensure_tables(ledger.database_url, ledger.connection, "outcomes", SCHEMA)


def record(ledger: Ledger, refusals: Sequence[Refusal]) -> None:
    """Keep the refusals (one transaction)."""
    if not refusals:
        return
    migrate(ledger)
    rows = [
        (
            r.organisation,
            r.channel,
            r.status,
            _uuid(r.event_id),
            r.message_id,
            r.trigger,
            "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in r.errors),
            json.dumps([{"loc": e.loc, "msg": e.msg} for e in r.errors]),
        )
        for r in refusals
    ]
    with ledger.connection() as conn, conn.transaction(), conn.cursor() as curs:
        curs.executemany(
            "INSERT INTO publisher_outcomes (organisation, channel, status, event_id,"
            " message_id, trigger, reason, errors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def of_messages(
    results: Sequence[MessageResult],
    messages: Sequence[bytes | str],
    settings: Settings,
    channel: str,
    *,
    fallback: str | None = None,
) -> list[Refusal]:
    """The refusals among HL7 v2 results, attributed by sending facility (else to
    ``fallback``, e.g. the HTTP publisher's organisation)."""
    out: list[Refusal] = []
    for result, raw in zip(results, messages, strict=True):
        if not result.refused:
            continue
        source = acknowledgement.header(raw)
        facility = namespace(source.segment("MSH"), 4) if source is not None else ""
        out.append(
            Refusal(
                settings.adt_facilities.get(facility, fallback),
                channel,
                result.status,
                result.item.event_id,
                result.control_id,
                result.trigger,
                result.item.errors,
            )
        )
    return out


def of_items(
    items: Sequence[ItemResult],
    payloads: Sequence[Any],
    allowed: Collection[str] | None,
    channel: str = "http",
) -> list[Refusal]:
    """The refusals among an envelope batch's results (``POST /v1/events``)."""
    out: list[Refusal] = []
    for item, payload in zip(items, payloads, strict=True):
        if item.status not in ("rejected", "conflict"):
            continue
        claimed = _claimed(payload)
        if allowed is None or claimed in allowed:
            organisation = claimed
        else:
            organisation = min(allowed) if allowed else None
        out.append(
            Refusal(organisation, channel, item.status, item.event_id, None, None, item.errors)
        )
    return out


def _claimed(payload: Any) -> str | None:
    source = payload.get("source") if isinstance(payload, Mapping) else None
    organisation = source.get("organisation") if isinstance(source, Mapping) else None
    return organisation[:10] if isinstance(organisation, str) else None


def _uuid(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        return None


# -- reading (the publisher's view) ----------------------------------------------------------


def refusals(
    ledger: Ledger, organisations: Collection[str] | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """The refusals attributed to ``organisations`` (None: all), oldest first, after the
    row id ``after``; at most ``limit``."""
    migrate(ledger)
    where, params = "id > %s", list[Any]([after])
    if organisations is not None:
        where += " AND organisation = ANY(%s)"
        params.append(sorted(organisations))
    with ledger.connection() as conn:
        rows = conn.execute(
            "SELECT id, received_at, organisation, channel, status, event_id, message_id,"
            f" trigger, reason, errors FROM publisher_outcomes WHERE {where}"
            " ORDER BY id LIMIT %s",
            (*params, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def findings(
    ledger: Ledger, organisations: Collection[str] | None, after: tuple[int, int], limit: int
) -> list[dict[str, Any]]:
    """Data-quality findings about events the organisations published, in ledger order
    after (position, seq) ``after``; at most ``limit``. Empty until the ``quality``
    projection exists."""
    where, params = "(q.position, q.seq) > (%s, %s)", list[Any](after)
    if organisations is not None:
        where += " AND e.source_organisation = ANY(%s)"
        params.append(sorted(organisations))
    with ledger.connection() as conn:
        exists = conn.execute("SELECT to_regclass('quality_findings') AS t").fetchone()
        if exists is None or exists["t"] is None:
            return []
        rows = conn.execute(
            "SELECT q.position, q.seq, q.kind, q.event_id, q.event_type, q.occurred_at,"
            " q.recorded_at, q.detail, e.source_organisation AS organisation"
            " FROM quality_findings q JOIN ledger_events e ON e.position = q.position"
            f" WHERE {where} ORDER BY q.position, q.seq LIMIT %s",
            (*params, limit),
        ).fetchall()
    return [dict(r) for r in rows]
