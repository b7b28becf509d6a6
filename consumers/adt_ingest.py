"""ADT messages into the ledger: decode each, append the envelopes as one batch, and keep
the A08 identity updates beside them in the same transaction.

Used by ``carejourney adt import`` (files) and by the ADT consumer (topic
``care.adt.hl7v2``): both get one result per message, in the ledger's ``ItemResult``
shape (recorded / duplicate / conflict / rejected with ``[{loc, msg}]``), so the CLI
report, the DLQ headers and the HTTP results read alike.

A08 (update patient information) is no journey event. The ledger keeps no demographics
to update, so what is kept is the fact that the update was seen: one row per message in
``adt_identity_updates`` (this module's table) with the person's ``patient_id`` if the
ledger knows the number (``NULL`` otherwise; never the number itself), the source, the
time, and the *names* of the PID/PV1 fields sent (updated) and sent as ``""`` (deleted);
empty fields mean "no change". The row is keyed by the same uuid5 event id as events, so
a resent A08 is a duplicate and a reused control id with other content a conflict.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers import acknowledgement, adt_codes
from consumers.adt import Decoded, IdentityUpdate, Outcome, Rejected, decode
from consumers.feed import Aside, Feed, Rejection
from consumers.feed import Decoded as FeedDecoded
from consumers.hl7v2 import value
from consumers.outcome import Message
from domain import merges
from domain.contract import FieldError, utc_text
from domain.database import ensure_tables
from domain.ledger import ExtraWrite, ItemResult, Ledger
from domain.settings import Settings

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS adt_identity_updates (
        event_id      uuid PRIMARY KEY,
        patient_id    uuid,
        organisation  text NOT NULL,
        system        text NOT NULL,
        occurred_at   timestamptz NOT NULL,
        received_at   timestamptz NOT NULL DEFAULT now(),
        sent          text[] NOT NULL,
        deleted       text[] NOT NULL,
        content_hash  text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS adt_identity_updates_patient_idx"
    " ON adt_identity_updates (patient_id)",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prior:
    """The recorded message a duplicate or conflict collides with: where and when."""

    position: int | None
    recorded_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageResult:
    """One message's outcome: its trigger (if read), the ledger-shaped result, notes; in
    a dry run (``preview_messages``) also the envelope as mapped."""

    index: int
    trigger: str | None
    item: ItemResult
    notes: tuple[str, ...] = ()
    identity_update: bool = False
    control_id: str | None = None  # MSH-10 as sent (reports and ACKs name it)
    prior: Prior | None = None  # for a duplicate or conflict: the message it collides with
    envelope: dict[str, Any] | None = None
    dry_run: bool = False

    @property
    def status(self) -> str:
        return self.item.status

    @property
    def refused(self) -> bool:
        return self.item.status in ("rejected", "conflict")

    def reason(self) -> str:
        return self.item.reason()

    def collision(self) -> str:
        """For a duplicate or conflict: which control id met which recorded message
        (``MSH-10 'M1' = the message at position 12, recorded 2026-03-02T10:16:00Z``)."""
        if self.item.status not in ("duplicate", "conflict"):
            return ""
        control = f"MSH-10 {self.control_id!r}" if self.control_id else "no MSH-10"
        if self.prior is None or self.prior.position is None:
            return f"{control}: the same as an earlier message of this batch"
        when = utc_text(self.prior.recorded_at) if self.prior.recorded_at else "?"
        return (
            f"{control}: the same as the message at position {self.prior.position}, recorded {when}"
        )

    @property
    def shown_status(self) -> str:
        """The status as reported: in a dry run nothing is recorded, only would be."""
        if self.dry_run and self.item.status == "recorded":
            return "would_record"
        return self.item.status

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``adt import --json`` and ``POST /v1/adt``."""
        out: dict[str, Any] = {
            "index": self.index,
            "message_control_id": self.control_id,
            "trigger": self.trigger,
            "status": self.shown_status,
            "event_id": self.item.event_id,
        }
        if self.item.position is not None:
            out["position"] = self.item.position
        if self.identity_update:
            out["identity_update"] = True
        if self.item.errors:
            out["reason"] = self.reason()
        if self.collision():
            out["collision"] = self.collision()
            out["errors"] = [{"loc": e.loc, "msg": e.msg} for e in self.item.errors]
        if self.notes:
            out["notes"] = list(self.notes)
        if self.envelope is not None:
            out["envelope"] = self.envelope
        return out


def migrate(ledger: Ledger) -> None:
    """Create this module's table (idempotent; once per database per process)."""
    ensure_tables(ledger.database_url, ledger.connection, "adt", SCHEMA)


def append_messages(
    ledger: Ledger,
    messages: Sequence[bytes | str],
    settings: Settings,
    *,
    trackings: Sequence[Tracking] = (),
    extra_writes: Sequence[ExtraWrite] = (),
    allowed_organisations: Collection[str] | None = None,
) -> list[MessageResult]:
    """Decode and record a batch of raw ER7 messages in one ledger transaction (with any
    ``trackings`` and ``extra_writes`` of the caller, e.g. Kafka offsets).
    ``allowed_organisations`` (an HTTP publisher's) refuses messages whose facility maps
    to another organisation."""
    migrate(ledger)
    outcomes = [decode(raw, settings) for raw in messages]
    results = record_outcomes(
        ledger,
        outcomes,
        trackings=trackings,
        extra_writes=extra_writes,
        allowed_organisations=allowed_organisations,
    )
    return [
        replace(r, control_id=control_id(raw)) for r, raw in zip(results, messages, strict=True)
    ]


def preview_messages(
    ledger: Ledger,
    messages: Sequence[bytes | str],
    settings: Settings,
    *,
    allowed_organisations: Collection[str] | None = None,
) -> list[MessageResult]:
    """A dry run of ``append_messages``: each message's result as it would be, with the
    envelope as mapped, and nothing written (``Ledger.preview`` says what is judged)."""
    migrate(ledger)
    outcomes = [decode(raw, settings) for raw in messages]
    results = record_outcomes(
        ledger, outcomes, allowed_organisations=allowed_organisations, dry_run=True
    )
    return [
        replace(r, control_id=control_id(raw)) for r, raw in zip(results, messages, strict=True)
    ]


def control_id(raw: bytes | str) -> str | None:
    """The message's MSH-10, as the sender knows it (None if unreadable)."""
    header = acknowledgement.header(raw)
    found = value(header.segment("MSH"), 10) if header is not None else ""
    return found or None


def record_outcomes(
    ledger: Ledger,
    outcomes: Sequence[Outcome],
    *,
    trackings: Sequence[Tracking] = (),
    extra_writes: Sequence[ExtraWrite] = (),
    allowed_organisations: Collection[str] | None = None,
    dry_run: bool = False,
) -> list[MessageResult]:
    """Record already-decoded messages (see ``append_messages``; ``dry_run``: judge
    them, write nothing)."""
    migrate(ledger)
    results: dict[int, MessageResult] = {}
    envelopes: list[tuple[int, Decoded]] = []
    updates: list[tuple[int, IdentityUpdate]] = []
    allowed = None if allowed_organisations is None else frozenset(allowed_organisations)
    for index, outcome in enumerate(outcomes):
        if (
            allowed is not None
            and isinstance(outcome, IdentityUpdate)
            and outcome.organisation not in allowed
        ):
            outcome = Rejected(
                (
                    FieldError(
                        "MSH-4",
                        f"not authorised to publish for organisation {outcome.organisation}",
                    ),
                ),
                outcome.event_id,
                outcome.trigger,
            )
        if isinstance(outcome, Rejected):
            results[index] = MessageResult(
                index,
                outcome.trigger,
                ItemResult(index, outcome.event_id, "rejected", errors=outcome.errors),
                control_id=outcome.control_id,
            )
        elif isinstance(outcome, IdentityUpdate):
            updates.append((index, outcome))
        else:
            envelopes.append((index, outcome))
    update_results, update_write = record_identity_updates(ledger, updates)
    controls = {i: u.control_id for i, u in updates}
    for index, item in update_results.items():
        results[index] = MessageResult(
            index,
            adt_codes.IDENTITY_UPDATE,
            item,
            identity_update=True,
            control_id=controls[index],
            dry_run=dry_run,
        )
    writes = [*extra_writes, *([update_write] if update_write is not None else [])]
    items = [d.envelope for _, d in envelopes]
    if dry_run:
        batch = ledger.preview(items, allowed_organisations=allowed)
    else:
        batch = ledger.append_batch(
            items, trackings=trackings, extra_writes=writes, allowed_organisations=allowed
        )
    priors = _priors(ledger, [i for i in batch.items if i.status in ("duplicate", "conflict")])
    for (index, decoded), item in zip(envelopes, batch.items, strict=True):
        results[index] = MessageResult(
            index,
            decoded.trigger,
            ItemResult(index, item.event_id, item.status, item.position, item.errors),
            decoded.notes,
            control_id=decoded.control_id,
            prior=priors.get(item.event_id or ""),
            envelope=decoded.envelope if dry_run else None,
            dry_run=dry_run,
        )
    for index, result in list(results.items()):
        if dry_run and not result.dry_run:
            results[index] = replace(result, dry_run=True)
    return [results[i] for i in range(len(outcomes))]


def _priors(ledger: Ledger, items: Sequence[ItemResult]) -> dict[str, Prior]:
    """Position and recording time of the messages duplicates and conflicts met."""
    ids = [UUID(i.event_id) for i in items if i.event_id]
    if not ids:
        return {}
    with ledger.connection() as conn:
        rows = conn.execute(
            "SELECT event_id, position, recorded_at FROM ledger_events WHERE event_id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {str(r["event_id"]): Prior(r["position"], r["recorded_at"]) for r in rows}


def _content_hash(update: IdentityUpdate) -> str:
    content = {
        "organisation": update.organisation,
        "system": update.system,
        "occurred_at": utc_text(update.occurred_at),
        "sent": list(update.sent),
        "deleted": list(update.deleted),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def record_identity_updates(
    ledger: Ledger, updates: Sequence[tuple[int, IdentityUpdate]]
) -> tuple[dict[int, ItemResult], ExtraWrite | None]:
    """Duplicate / conflict / new for each A08 (judged before the transaction), and the
    write of the new rows (run inside it). The Kafka feed's ``record_asides``."""
    migrate(ledger)
    results: dict[int, ItemResult] = {}
    if not updates:
        return results, None
    with ledger.connection() as conn:
        known = {
            r["event_id"]: r["content_hash"]
            for r in conn.execute(
                "SELECT event_id, content_hash FROM adt_identity_updates WHERE event_id = ANY(%s)",
                ([UUID(u.event_id) for _, u in updates],),
            )
        }
    rows: list[tuple[Any, ...]] = []
    for index, update in updates:
        digest = _content_hash(update)
        event_id = UUID(update.event_id)
        prior = known.get(event_id)
        if prior is None:
            known[event_id] = digest
            rows.append(
                (
                    event_id,
                    update.nhs_number,
                    update.local_id,
                    update.organisation,
                    update.system,
                    update.occurred_at,
                    list(update.sent),
                    list(update.deleted),
                    digest,
                )
            )
            status: Literal["recorded", "duplicate", "conflict"] = "recorded"
        else:
            status = "duplicate" if prior == digest else "conflict"
        errors = (
            ()
            if status != "conflict"
            else (FieldError("event_id", "event_id already recorded with different content"),)
        )
        results[index] = ItemResult(index, update.event_id, status, errors=errors)
    if not rows:
        return results, None

    def write(curs: Cursor[DictRow]) -> None:
        # The person is looked up here, inside the batch's transaction, after the batch's
        # events registered their identifiers: an A08 in the same run as the person's
        # first event is linked to that person.
        conn = curs.connection
        curs.executemany(
            "INSERT INTO adt_identity_updates (event_id, patient_id, organisation, system,"
            " occurred_at, sent, deleted, content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            [
                (event_id, merges.person_now(conn, nhs, local), *rest)
                for event_id, nhs, local, *rest in rows
            ],
        )

    return results, write


# -- the Kafka feed (``carejourney consume --adt``) ---------------------------------------


def kafka_feed(settings: Settings, topics: Sequence[str] | None = None) -> Feed:
    """Topic ``care.adt.hl7v2`` (raw ER7 bytes, one message per record) through the shared
    consumer loop (``consumers/loop.py``): offsets with the events, refusals to
    ``care.adt.hl7v2.dlq`` with the reason, A08s kept beside the events.

    No organisation allow-list: the facility mapping (CAREJOURNEY_ADT_FACILITIES) is the
    ADT feed's authorisation, and an unmapped facility is a rejection naming it.
    """

    def decode_record(message: Message) -> FeedDecoded:
        if message.value is None:
            return Rejection.because("empty message: no HL7 v2 ADT message (a tombstone?)")
        outcome = decode(message.value, settings)
        if isinstance(outcome, Rejected):
            return Rejection(outcome.errors, outcome.event_id)
        if isinstance(outcome, IdentityUpdate):
            return Aside(outcome)
        for note in outcome.notes:
            log.info(
                "%s:%s@%s %s: %s",
                message.topic,
                message.partition,
                message.offset,
                outcome.trigger,
                note,
            )
        return outcome.envelope

    return Feed(
        name="adt",
        topics=tuple(topics or (settings.adt_topic,)),
        dead_letter_topic=settings.adt_dead_letter_topic,
        decode=decode_record,
        allowed_organisations=None,
        record_asides=record_identity_updates,
    )
