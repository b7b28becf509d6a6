"""Judging an append: envelopes in, decisions out, no database and no clock.

The ledger (``domain/ledger.py``) reads what an append is judged against (the people
the NHS numbers resolve to, the events already recorded under the batch's ids and
retraction targets, the standing merges) and writes what is recorded; everything in
between is decided here, by plain functions a test can call with plain values:

* ``check``: each raw item against the contract (``parse_envelope``), the publisher's
  organisations, the future horizon and the fields only the ledger may set; a refused
  item is ``rejected`` with every reason, the others go on as ``Valid``;
* ``judge``: each valid item, in order, against what is recorded and what the batch did
  before it: the same ``event_id`` with the same canonical content is a ``duplicate``,
  with other content (or for another person) a ``conflict``; a retraction must name an
  event of the same person (merges counted); a merge must be possible. Standing merges
  resolve each item's person, and a merge early in a batch redirects later items
  (``MergeState`` is changed as the batch is judged, then written with it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from domain import merges
from domain.contract import (
    ContractError,
    Envelope,
    EventType,
    FieldError,
    envelope_content,
    parse_envelope,
)
from domain.integrity import content_hash

Status = Literal["recorded", "duplicate", "conflict", "rejected"]
RawEnvelope = Mapping[str, Any] | str | bytes


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one batch item; the same shape serves HTTP, ``ingest`` and DLQ."""

    index: int
    event_id: str | None
    status: Status
    position: int | None = None
    errors: tuple[FieldError, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "event_id": self.event_id}
        out["status"] = self.status
        if self.position is not None:
            out["position"] = self.position
        if self.errors:
            out["errors"] = [{"loc": e.loc, "msg": e.msg} for e in self.errors]
        return out

    def reason(self) -> str:
        return "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in self.errors)


@dataclass(frozen=True, slots=True)
class Valid:
    """An item that passed the contract, waiting to be placed."""

    index: int
    envelope: Envelope
    content: dict[str, Any]
    content_hash: str


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the judge decided: the results of the items not to be recorded (duplicate,
    conflict, rejected) and the items to record, in order, each with its person."""

    results: dict[int, ItemResult]
    to_record: list[tuple[Valid, UUID]]


def check(
    items: Sequence[RawEnvelope],
    allowed: Collection[str] | None,
    now: datetime,
    tolerance: timedelta,
) -> tuple[list[Valid], dict[int, ItemResult]]:
    """The items that pass the contract and the ledger's own checks, and the rejected
    items' results by index. ``allowed``: the publisher's organisations (None: any); an
    ``occurred_at`` more than ``tolerance`` after ``now`` is refused."""
    valid: list[Valid] = []
    results: dict[int, ItemResult] = {}
    horizon = now + tolerance
    for index, raw in enumerate(items):
        try:
            env = parse_envelope(raw)
        except ContractError as exc:
            results[index] = ItemResult(
                index, _raw_event_id(raw), "rejected", errors=tuple(exc.errors)
            )
            continue
        problem: FieldError | None = None
        if allowed is not None and env.source.organisation not in allowed:
            problem = FieldError(
                "source.organisation",
                f"not authorised to publish for organisation {env.source.organisation}",
            )
        elif env.occurred_at > horizon:
            problem = FieldError(
                "occurred_at",
                f"in the future: more than {tolerance} after now",
            )
        elif getattr(env.data, "merged_patient_id", None) is not None:
            problem = FieldError(
                "data.merged_patient_id",
                "set by the ledger: name the merged person by merged_nhs_number",
            )
        if problem is not None:
            results[index] = ItemResult(index, str(env.event_id), "rejected", errors=(problem,))
            continue
        content = envelope_content(env)
        # A merge's stored form (and so its hash) is known once its number is resolved.
        digest = "" if env.type == merges.MERGE_TYPE else content_hash(content)
        valid.append(Valid(index, env, content, digest))
    return valid, results


def judge(
    valid: Sequence[Valid],
    patient_ids: Mapping[str, UUID],
    existing: Mapping[UUID, Mapping[str, Any]],
    state: merges.MergeState,
) -> Judgement:
    """Each item in order against what is recorded (``existing``: event id -> its
    ``patient_id``, ``content_hash`` and ``position``) and what the batch did before it,
    resolving people through ``state``'s standing merges (module docstring)."""
    out: dict[int, ItemResult] = {}
    seen: dict[UUID, tuple[Valid, UUID]] = {}  # event id -> first item, its person
    to_record: list[tuple[Valid, UUID]] = []
    for v in valid:
        env = v.envelope
        patient = state.effective(patient_ids[env.nhs_number])
        event_id = env.event_id
        prior = existing.get(event_id)
        if prior is not None:
            other = state.effective(prior["patient_id"]) != patient
            same = prior["content_hash"] == v.content_hash and not other
            out[v.index] = ItemResult(
                v.index,
                str(event_id),
                "duplicate" if same else "conflict",
                position=prior["position"],
                errors=() if same else (_conflict(other),),
            )
            continue
        if event_id in seen:
            first, first_patient = seen[event_id]
            other = state.effective(first_patient) != patient
            same = first.content_hash == v.content_hash and not other
            out[v.index] = ItemResult(
                v.index,
                str(event_id),
                "duplicate" if same else "conflict",
                errors=() if same else (_conflict(other),),
            )
            continue
        problem: FieldError | None = None
        if env.type == EventType.EVENT_RETRACTED:
            problem = _retraction_problem(env, patient, existing, seen, state)
        elif env.type == merges.MERGE_TYPE:
            refused = state.merge(event_id, merges.merged_patient(v.content), patient)
            if refused is not None:
                problem = FieldError("data.merged_nhs_number", refused)
        if problem is not None:
            out[v.index] = ItemResult(v.index, str(event_id), "rejected", errors=(problem,))
            continue
        seen[event_id] = (v, patient)
        to_record.append((v, patient))
    return Judgement(out, to_record)


def _conflict(other_person: bool) -> FieldError:
    if other_person:
        return FieldError("event_id", "event_id already recorded for another person")
    return FieldError("event_id", "event_id already recorded with different content")


def _retraction_problem(
    env: Envelope,
    patient: UUID,
    existing: Mapping[UUID, Mapping[str, Any]],
    seen: Mapping[UUID, tuple[Valid, UUID]],
    state: merges.MergeState,
) -> FieldError | None:
    """A retraction must name an event already recorded (or earlier in this batch) for
    the same person; one that arrives before its target is refused so the publisher
    retries it later. "The same person" counts standing merges: after A is merged into
    B, either number may retract an event of A's or B's stream. A retraction in a
    merge's retraction tree also moves the merge (``MergeState.retract``)."""
    target = UUID(str(envelope_content(env)["data"]["retracted_event_id"]))
    loc = "data.retracted_event_id"
    if target == env.event_id:
        return FieldError(loc, "an event cannot retract itself")
    if target in existing:
        owner = existing[target]["patient_id"]
    elif target in seen:
        owner = seen[target][1]
    else:
        return FieldError(loc, f"no recorded event {target} to retract (yet)")
    if state.effective(owner) != patient:
        return FieldError(loc, f"event {target} belongs to another person")
    refused = state.retract(env.event_id, target)
    return None if refused is None else FieldError(loc, refused)


def _raw_event_id(raw: RawEnvelope) -> str | None:
    """Echo the publisher's event id on a rejection when there is one to echo."""
    if isinstance(raw, Mapping):
        value = raw.get("event_id")
        return value if isinstance(value, str) else None
    return None
