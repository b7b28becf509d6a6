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
  (``MergeState`` is changed as the batch is judged, then written with it). Each item
  is also held to the authority rules (``domain/authority.py``: who may retract, who
  may state coordinator facts) unless the caller is exempt.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

from domain import authority, merges
from domain.contract import (
    ContractError,
    Envelope,
    EventType,
    FieldError,
    envelope_content,
    parse_envelope,
)
from domain.integrity import content_hash
from domain.journey import state_tail

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
    """An item that passed the contract, waiting to be placed: its content (what is
    stored and hashed: ``envelope_content``) and the identifiers that name its person
    (never stored), as plain values. No pydantic model is kept: a batch checked in a
    worker process comes back as plain data (unpickling the models cost more than
    validating them), and everything the judgement and the writes need is here."""

    index: int
    event_id: UUID
    content: dict[str, Any]
    content_hash: str
    nhs_number: str | None = None
    local_id: tuple[str, str] | None = None
    state_tail: bytes | None = None  # ``journey.state_tail`` of the content, if made

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as plain values (the id as its 16 bytes): the default for a frozen
        dataclass sets each field through ``object.__setattr__``, and a ``UUID`` pickles
        through its ``__setstate__``; this takes half the time each way."""
        return _unpickle_valid, (
            self.index,
            self.event_id.bytes,
            self.content,
            self.content_hash,
            self.nhs_number,
            self.local_id,
            self.state_tail,
        )

    @property
    def type(self) -> str:
        return str(self.content["type"])

    @property
    def organisation(self) -> str:
        return str(self.content["source"]["organisation"])

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromisoformat(self.content["occurred_at"])


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
                "set by the ledger: name the merged person by merged_nhs_number or merged_local_id",
            )
        if problem is not None:
            results[index] = ItemResult(index, str(env.event_id), "rejected", errors=(problem,))
            continue
        valid.append(_valid(index, env))
    return valid, results


def _unpickle_valid(
    index: int,
    event_id: bytes,
    content: dict[str, Any],
    digest: str,
    nhs_number: str | None,
    local_id: tuple[str, str] | None,
    tail: bytes | None,
) -> Valid:
    return Valid(index, UUID(bytes=event_id), content, digest, nhs_number, local_id, tail)


@dataclass(frozen=True, slots=True)
class Checked:
    """A batch after ``check``: how many items it had, the valid ones, and the rejected
    ones' results by index. Plain data: it may come from a worker process."""

    count: int
    valid: list[Valid]
    rejected: dict[int, ItemResult]


def check_batch(
    items: Sequence[RawEnvelope], allowed: Collection[str] | None, tolerance: timedelta
) -> Checked:
    """``check`` against the clock now: what a worker process runs for the ledger
    (``domain/checking.py``), and what ``Ledger.append_batch`` runs in-process."""
    valid, rejected = check(items, allowed, datetime.now(UTC), tolerance)
    return Checked(len(items), valid, rejected)


def _valid(index: int, env: Envelope) -> Valid:
    content = envelope_content(env)
    # A merge's stored form (its hash, its stored state) is known once its number is
    # resolved; every other content is stored as checked.
    merge = env.type == merges.MERGE_TYPE
    digest = "" if merge else content_hash(content)
    tail = None if merge else state_tail(content)
    local = None if env.local_id is None else (env.local_id.authority, env.local_id.value)
    return Valid(index, env.event_id, content, digest, env.nhs_number, local, tail)


def judge(
    valid: Sequence[Valid],
    patient_ids: Mapping[str, UUID],
    existing: Mapping[UUID, Mapping[str, Any]],
    state: merges.MergeState,
    people: dict[UUID, authority.PersonAuthority] | None = None,
    *,
    patient_of: Mapping[int, UUID] | None = None,
    links: Mapping[int, tuple[UUID, UUID]] | None = None,
    problems: Mapping[int, str] | None = None,
) -> Judgement:
    """Each item in order against what is recorded (``existing``: event id -> its
    ``patient_id``, ``content_hash``, ``position`` and ``source_organisation``) and what
    the batch did before it, resolving people through ``state``'s standing merges
    (module docstring).

    People: ``patient_of`` (item index -> the patient id its identifiers named, NHS
    number or local id) when given, else ``patient_ids`` by NHS number. ``links``: items
    whose NHS number and local id were two people (local's, NHS's): the merge that makes
    them one is recorded just before the item (``link_merge``). ``problems``: items whose
    identifiers cannot be used (``domain/identity.py``), rejected with the reason.
    ``people``: what the authority rules know of each person (kept up as items are
    accepted); None when the caller is exempt from them."""
    out: dict[int, ItemResult] = {}
    seen: dict[UUID, tuple[Valid, UUID]] = {}  # event id -> first item, its person
    to_record: list[tuple[Valid, UUID]] = []
    for v in valid:
        event_id = v.event_id
        if problems and v.index in problems:
            loc = "data.merged_local_id" if v.type == merges.MERGE_TYPE else "local_id"
            unnamed = FieldError(loc, problems[v.index])
            out[v.index] = ItemResult(v.index, str(event_id), "rejected", errors=(unnamed,))
            continue
        named = patient_of[v.index] if patient_of is not None else patient_ids[str(v.nhs_number)]
        patient = state.effective(named)
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
        if people is not None:
            problem = _authority_problem(v, named, existing, seen, people)
        link = links.get(v.index) if links and problem is None else None
        if link is not None and state.effective(link[0]) != patient:
            linked = link_merge(v, state.effective(link[0]))
            refused = state.merge(linked.event_id, merges.merged_patient(linked.content), patient)
            if refused is not None:
                unlinked = FieldError("local_id", f"cannot link the identifiers: {refused}")
                out[v.index] = ItemResult(v.index, str(event_id), "rejected", errors=(unlinked,))
                continue
            to_record.append((linked, patient))
        if problem is not None:
            pass  # refused by the authority rules: nothing else is judged or changed
        elif v.type == EventType.EVENT_RETRACTED:
            problem = _retraction_problem(v, patient, existing, seen, state)
        elif v.type == merges.MERGE_TYPE:
            refused = state.merge(event_id, merges.merged_patient(v.content), patient)
            if refused is not None:
                problem = FieldError("data.merged_nhs_number", refused)
        if problem is not None:
            out[v.index] = ItemResult(v.index, str(event_id), "rejected", errors=(problem,))
            continue
        seen[event_id] = (v, patient)
        to_record.append((v, patient))
        if people is not None and named in people:
            people[named].learn(v.type, v.content["data"])
    return Judgement(out, to_record)


def _authority_problem(
    v: Valid,
    named: UUID,
    existing: Mapping[UUID, Mapping[str, Any]],
    seen: Mapping[UUID, tuple[Valid, UUID]],
    people: Mapping[UUID, authority.PersonAuthority],
) -> FieldError | None:
    """The authority rules (``domain/authority.py``) for one item, as a field error."""
    kind = v.type
    target_org = None
    if kind == EventType.EVENT_RETRACTED:
        target = UUID(str(v.content["data"]["retracted_event_id"]))
        if target in existing:
            target_org = existing[target].get("source_organisation")
        elif target in seen:
            target_org = seen[target][0].organisation
    elif kind not in authority.COORDINATOR_FACTS:
        return None
    person = people.get(named) or authority.PersonAuthority()
    refused = authority.refusal(
        kind, v.organisation, v.content["data"], person, target_organisation=target_org
    )
    return None if refused is None else FieldError("source.organisation", refused)


# Fixed for ever: the id of the merge that links an item's two identifiers derives from it.
LINK_NAMESPACE = UUID("6f1c9a52-52b1-5c38-9a57-2b7c0e6d3a11")
LINK_REASON = (
    "linked: one message named this NHS number and a local identifier of the merged person"
)


def link_merge(v: Valid, merged: UUID) -> Valid:
    """The ``PatientsMerged`` the ledger records when an item names an NHS number and a
    local id that were two people: the local id's person into the NHS number's, on the
    same occurred time and source, just before the item (index -1: no item of its own)."""
    local = v.local_id
    linked = parse_envelope(
        {
            "event_id": str(uuid5(LINK_NAMESPACE, str(v.event_id))),
            "type": merges.MERGE_TYPE,
            "schema_version": v.content["schema_version"],
            "nhs_number": v.nhs_number,
            "local_id": None if local is None else {"authority": local[0], "value": local[1]},
            "occurred_at": v.content["occurred_at"],
            "source": v.content["source"],
            "recorded_by": v.content["recorded_by"],
            "data": {"merged_patient_id": str(merged), "reason": LINK_REASON},
        }
    )
    merge = _valid(-1, linked)
    return replace(merge, content_hash=content_hash(merge.content))  # its stored form


def _conflict(other_person: bool) -> FieldError:
    if other_person:
        return FieldError("event_id", "event_id already recorded for another person")
    return FieldError("event_id", "event_id already recorded with different content")


def _retraction_problem(
    v: Valid,
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
    target = UUID(str(v.content["data"]["retracted_event_id"]))
    loc = "data.retracted_event_id"
    if target == v.event_id:
        return FieldError(loc, "an event cannot retract itself")
    if target in existing:
        owner = existing[target]["patient_id"]
    elif target in seen:
        owner = seen[target][1]
    else:
        return FieldError(loc, f"no recorded event {target} to retract (yet)")
    if state.effective(owner) != patient:
        return FieldError(loc, f"event {target} belongs to another person")
    refused = state.retract(v.event_id, target)
    return None if refused is None else FieldError(loc, refused)


def _raw_event_id(raw: RawEnvelope) -> str | None:
    """Echo the publisher's event id on a rejection when there is one to echo."""
    if isinstance(raw, Mapping):
        value = raw.get("event_id")
        return value if isinstance(value, str) else None
    return None
