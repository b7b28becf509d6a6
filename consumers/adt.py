"""HL7 v2 ADT message -> one contract envelope (domain/contract.py), an identity update, or a
rejection with its reasons.

Pure: no database, no broker. ``decode`` is the seam both doors use: ``carejourney adt
import`` (files) and ``carejourney consume --adt`` (topic ``care.adt.hl7v2``), through
``consumers/adt_ingest.py``. Every rule below is documented, with its tables, in
docs/adt.md:

* trigger from MSH-9.2 (EVN-1 may disagree: MSH wins and the result carries a note);
  A01/A02/A03/A04/A06/A07/A11/A12/A13/A40 become events, A08 an identity update,
  anything else is rejected as "unsupported trigger event";
* ``event_id`` derived from the message's content (``message_id``): sending application
  and facility, trigger, event time, the patient's identifiers and the mapped data, keyed
  by ``CAREJOURNEY_ADT_IDENTITY_KEY`` — never MSH-10, which real senders reuse. A resend
  is a duplicate; a different message reusing a control id is a new fact;
* the person from PID-3: the NHS number (rule in ``consumers/hl7v2.py``) and/or a local
  identifier (MR, else PI); neither -> rejected;
* descriptive fields (PV1-2, PV1-4, PV1-36) are never a reason to refuse: per-facility
  code maps (``consumers/code_maps.py``), then the NHS tables, else ``unknown`` with the
  value as sent kept in the event and a note (the quality fold reports it too);
* ``occurred_at`` from EVN-6, else EVN-2, else MSH-7, read in the configured zone when
  the value has no offset;
* source organisation = MSH-4.1 mapped to an ODS code by ``CAREJOURNEY_ADT_FACILITIES``;
  an unmapped facility is rejected by name. ``source.system`` = ``hl7v2:`` + MSH-3.1,
  ``source.setting`` = ``acute``; no ``recorded_by`` (a system feed).

A message with several problems reports them all, each located by its HL7 field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hl7.containers import Message, Segment

from consumers import adt_codes, code_maps, discharge_ready
from consumers.hl7v2 import (
    HL7_NULL,
    Hl7Error,
    identifier_types,
    local_identifier,
    namespace,
    nhs_number,
    parse,
    present,
    segment,
    timestamp,
    value,
)
from domain.contract import (
    ID_MAX,
    SCHEMA_VERSION,
    ContractError,
    FieldError,
    parse_envelope,
    utc_text,
)
from domain.settings import Settings

# Fixed for ever: changing it would turn every resent message into a new event.
ADT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:carejourney:hl7v2-adt")
MESSAGE_ID_VERSION = 2  # 1 was uuid5(ADT_NAMESPACE, "MSH-3|MSH-4|MSH-10")
SYSTEM_MAX = 100
TEXT_MAX = 500


def message_id(key: str, facts: dict[str, Any]) -> str:
    """A message's event id from what it says (``_Mapper.event_id``): HMAC-SHA-256 of the
    canonical JSON of ``facts`` under ``key``, as a UUID. Keyed because the facts hold the
    patient's identifiers and event ids are public: an unkeyed hash of them could be
    searched for an NHS number."""
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(key.encode(), canonical.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the ledger cannot take, with every reason found (``loc`` = HL7 field)."""

    errors: tuple[FieldError, ...]
    event_id: str | None = None
    trigger: str | None = None
    control_id: str | None = None

    def reason(self) -> str:
        return "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in self.errors)


@dataclass(frozen=True, slots=True)
class IdentityUpdate:
    """An A08: no journey event, but the fact it was seen is kept (adt_identity_updates).

    ``sent`` names the PID/PV1 fields that carried a value (updated) and ``deleted`` the
    ones sent as ``""`` (HL7 null: delete); empty fields mean "no change". Names only:
    values (demographics) never leave the message.
    """

    event_id: str
    nhs_number: str | None
    organisation: str
    system: str
    occurred_at: datetime
    sent: tuple[str, ...]
    deleted: tuple[str, ...]
    trigger: str = adt_codes.IDENTITY_UPDATE
    local_id: tuple[str, str] | None = None
    control_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message that became a contract envelope (a plain dict, as a publisher sends)."""

    envelope: dict[str, Any]
    trigger: str
    notes: tuple[str, ...] = field(default=())
    control_id: str | None = None  # MSH-10, for reports and ACKs (not the event's identity)


Outcome = Decoded | IdentityUpdate | Rejected


def decode(raw: bytes | str, settings: Settings) -> Outcome:
    """One ER7 message (any segment terminator) -> envelope, identity update or rejection."""
    try:
        message = parse(raw)
    except Hl7Error as exc:
        return Rejected((FieldError("", str(exc)),))
    return _Mapper(message, settings).run()


class _Mapper:
    """One message's mapping; problems are collected, not raised, so all are reported."""

    def __init__(self, message: Message, settings: Settings) -> None:
        self.msg = message
        self.settings = settings
        self.msh = segment(message, "MSH")
        self.evn = segment(message, "EVN")
        self.pid = segment(message, "PID")
        self.pv1 = segment(message, "PV1")
        self.errors: list[FieldError] = []
        self.notes: list[str] = []
        self.control: str | None = None

    def problem(self, loc: str, msg: str) -> None:
        self.errors.append(FieldError(loc, msg))

    def run(self) -> Outcome:
        kind, trigger = value(self.msh, 9, 1, 1), value(self.msh, 9, 1, 2)
        self.control = value(self.msh, 10) or None
        if kind and kind != "ADT":
            return self.refuse(FieldError("MSH-9.1", f"not an ADT message ({kind})"), None)
        if not trigger:
            return self.refuse(FieldError("MSH-9.2", "no trigger event"), None)
        if trigger not in adt_codes.TRIGGERS:
            return self.refuse(
                FieldError("MSH-9.2", f"unsupported trigger event {trigger}"), trigger
            )
        said = value(self.evn, 1)
        if said and said != trigger:
            self.notes.append(f"EVN-1 says {said}; MSH-9.2 ({trigger}) wins")
        organisation = self.organisation()
        nhs, local = self.person(self.pid, "PID-3")
        occurred = self.occurred_at()
        system = (adt_codes.ADT_SYSTEM_PREFIX + (namespace(self.msh, 3) or "adt"))[:SYSTEM_MAX]
        ready = None
        if trigger == adt_codes.IDENTITY_UPDATE:
            site = discharge_ready.mapping(self.settings.adt_discharge_ready)
            ready = discharge_ready.decision(self.msg, site)
            if ready is None:
                update = self.identity_update(nhs, local, organisation, system, occurred)
                return update if update is not None else self.rejected(None, trigger)
        data: dict[str, Any] | None
        if ready is not None:  # an A08 carrying "ready for discharge" (docs/alerts.md)
            event_type = "DischargeReady"
            data = {"encounter_id": self.field(self.pv1, "PV1-19", 19), **ready["data"]}
            if ready["time"]:
                try:
                    occurred = timestamp(ready["time"], self.settings.zone)
                except ValueError as exc:
                    self.problem("discharge ready time", str(exc))
        else:
            event_type = adt_codes.TRIGGERS[trigger]
            data = self.data(trigger, organisation)
        if self.errors or (nhs is None and local is None) or occurred is None:
            return self.rejected(None, trigger)
        assert organisation is not None and data is not None
        envelope: dict[str, Any] = {
            "event_id": self.event_id(trigger, occurred, nhs, local, data),
            "type": event_type,
            "schema_version": SCHEMA_VERSION,
        }
        if nhs is not None:
            envelope["nhs_number"] = nhs
        if local is not None:
            envelope["local_id"] = {"authority": local[0], "value": local[1]}
        envelope |= {
            "occurred_at": utc_text(occurred),
            "source": {"organisation": organisation, "system": system, "setting": "acute"},
            "data": data,
        }
        try:
            parse_envelope(envelope)
        except ContractError as exc:  # e.g. a ward name longer than the contract allows
            self.errors.extend(exc.errors)
            return self.rejected(envelope["event_id"], trigger)
        return Decoded(envelope, trigger, tuple(self.notes), self.control)

    def refuse(self, error: FieldError, trigger: str | None) -> Rejected:
        return Rejected((error,), None, trigger, self.control)

    def rejected(self, event_id: str | None, trigger: str) -> Rejected:
        return Rejected(tuple(self.errors), event_id, trigger, self.control)

    # -- the envelope fields ---------------------------------------------------------

    def event_id(
        self,
        trigger: str,
        occurred: datetime,
        nhs: str | None,
        local: tuple[str, str] | None,
        data: dict[str, Any],
    ) -> str:
        """The event's identity: what the message says, not its control id (MSH-10 is
        reused by real senders; an identical or same-content resend is a duplicate)."""
        facts = {
            "v": MESSAGE_ID_VERSION,
            "application": namespace(self.msh, 3),
            "facility": namespace(self.msh, 4),
            "trigger": trigger,
            "occurred_at": utc_text(occurred),
            "nhs_number": nhs,
            "local_id": list(local) if local is not None else None,
            "data": data,
        }
        return message_id(self.settings.adt_identity_key, facts)

    def organisation(self) -> str | None:
        facility = namespace(self.msh, 4)
        if not facility:
            self.problem("MSH-4", "no sending facility")
            return None
        ods = self.settings.adt_facilities.get(facility)
        if ods is None:
            self.problem(
                "MSH-4",
                f"sending facility {facility!r} is not mapped to an ODS "
                "code (CAREJOURNEY_ADT_FACILITIES)",
            )
        return ods

    def nhs(self, seg: Segment | None, where: str) -> str | None:
        if seg is None:
            self.problem(where, f"no {where[:3]} segment")
            return None
        found = nhs_number(seg, int(where[4:]), where)
        if found.problem is not None:
            self.problem(where, found.problem)
        return found.number

    def person(self, seg: Segment | None, where: str) -> tuple[str | None, tuple[str, str] | None]:
        """The NHS number and/or the local identifier (MR, else PI) of a CX list.

        Either is enough. A repetition that says NHS but fails the check is refused
        when there is no local id to record by; beside a local id it is left out, with a
        note (the person is recorded by the local id, and linked when a valid number
        arrives)."""
        if seg is None:
            self.problem(where, f"no {where[:3]} segment")
            return None, None
        number = int(where[4:])
        found = nhs_number(seg, number, where)
        local = local_identifier(seg, number, namespace(self.msh, 4))
        if local is not None and (
            len(local[0]) > ID_MAX or len(local[1]) > ID_MAX or not local[1].strip()
        ):
            self.notes.append(f"{where}: local identifier too long for the contract: not used")
            local = None
        if found.number is not None:
            return found.number, local
        if local is not None:
            if found.problem is not None and not found.problem.startswith("no NHS number"):
                self.notes.append(f"{found.problem}: recorded by the local identifier")
            return None, local
        if found.problem is not None and not found.problem.startswith("no NHS number"):
            self.problem(where, found.problem)
        else:
            types = identifier_types(seg, number)
            shown = f" (found identifier types: {', '.join(types)})" if types else ""
            self.problem(
                where,
                f"no patient identifier in {where}: neither an NHS number (type NH/HN or"
                f" authority NHS) nor a local identifier (type MR or PI){shown}",
            )
        return None, None

    def occurred_at(self) -> datetime | None:
        for seg, number, loc in (
            (self.evn, 6, "EVN-6"),
            (self.evn, 2, "EVN-2"),
            (self.msh, 7, "MSH-7"),
        ):
            text = value(seg, number)
            if not text or text == HL7_NULL:
                continue
            try:
                return timestamp(text, self.settings.zone)
            except ValueError as exc:
                self.problem(loc, str(exc))
                return None
        self.problem("EVN-6", "no event time in EVN-6, EVN-2 or MSH-7")
        return None

    # -- type-specific data ----------------------------------------------------------

    def data(self, trigger: str, organisation: str | None) -> dict[str, Any] | None:
        if trigger == "A40":
            return self.merge()
        if trigger == "A04":
            return self.attendance(organisation)
        encounter = self.field(self.pv1, "PV1-19", 19)
        if trigger in ("A01", "A06"):
            data: dict[str, Any] = {"encounter_id": encounter, "hospital": organisation}
            ward = value(self.pv1, 3, 1, 1)
            if ward and ward != HL7_NULL:
                data["ward"] = ward[:TEXT_MAX]  # descriptive: never a reason to refuse
            default = None if trigger == "A01" else "inpatient"
            data |= self.coded(
                "PV1-4", 4, "method", adt_codes.ADMISSION_METHODS, "admission_method"
            )
            data |= self.patient_class(default)
            return data | self.sent_at()
        if trigger == "A02":
            return {
                "encounter_id": encounter,
                "from_location": self.location("PV1-6", 6),
                "to_location": self.location("PV1-3", 3),
            }
        if trigger in ("A03", "A07"):
            data = {"encounter_id": encounter}
            data |= self.coded(
                "PV1-36",
                36,
                "destination",
                adt_codes.DISCHARGE_DESTINATIONS,
                "discharge_destination",
            )
            place = self.location("PV1-3", 3, required=False)
            if place is not None:
                data["location"] = place
            data |= self.patient_class("outpatient" if trigger == "A07" else None)
            return data | self.sent_at()
        return {"encounter_id": encounter}  # A11, A12, A13

    def field(self, seg: Segment | None, loc: str, number: int) -> str | None:
        text = value(seg, number)
        if not text or text == HL7_NULL:
            what = {"PV1-19": "encounter id (visit number)"}.get(loc, "value")
            self.problem(loc, f"no {what}" if seg is not None else f"no {loc[:3]} segment")
            return None
        return text

    def coded(
        self, loc: str, number: int, name: str, table: dict[str, str], map_field: str
    ) -> dict[str, Any]:
        """A descriptive coded field: the facility's code map, then the NHS table, else
        ``unknown``, never a refusal. What was sent (code and text) is kept as
        ``<name>_as_sent`` whenever the field was sent at all."""
        code, text = self.cwe(number)
        sent = self.as_sent(code, text)
        found = code_maps.load(self.settings.adt_code_maps).lookup(
            namespace(self.msh, 4), map_field, code, text
        )
        if found is None and code in table:
            found = table[code]
        out: dict[str, Any] = {}
        if found is None:
            found = "unknown"
            shown = f"{code or text!r}" if (code or text) else "empty"
            self.notes.append(
                f"{loc}: {name.replace('_', ' ')} {shown} is not coded: recorded as unknown"
                " (map it in CAREJOURNEY_ADT_CODE_MAPS)"
            )
        out[name] = found
        if sent is not None:
            out[f"{name}_as_sent"] = sent
        return out

    def patient_class(self, default: str | None) -> dict[str, Any]:
        """PV1-2, when sent (``default`` for A06/A07, whose trigger says the class)."""
        code, text = self.cwe(2)
        sent = self.as_sent(code, text)
        if sent is None:
            return {} if default is None else {"patient_class": default}
        found = (
            code_maps.load(self.settings.adt_code_maps).lookup(
                namespace(self.msh, 4), "patient_class", code, text
            )
            or adt_codes.PATIENT_CLASSES.get(code.upper())
            or adt_codes.PATIENT_CLASSES.get(text.upper())
        )
        if found is None:
            found = default or "unknown"
            if default is None:
                self.notes.append(
                    f"PV1-2: patient class {code or text!r} is not coded: recorded as unknown"
                    " (map it in CAREJOURNEY_ADT_CODE_MAPS)"
                )
        return {"patient_class": found, "patient_class_as_sent": sent}

    def cwe(self, number: int) -> tuple[str, str]:
        """A CWE/IS field's code and text (HL7 null and blanks read as absent)."""
        code, text = value(self.pv1, number, 1, 1), value(self.pv1, number, 1, 2)
        return ("" if code == HL7_NULL else code), ("" if text == HL7_NULL else text)

    @staticmethod
    def as_sent(code: str, text: str) -> dict[str, str] | None:
        out = {k: v[:TEXT_MAX] for k, v in (("code", code), ("text", text)) if v}
        return out or None

    def sent_at(self) -> dict[str, str]:
        """MSH-7, when readable: of two versions of one admission (or discharge), the
        later sent is the correction (docs/adt.md)."""
        text = value(self.msh, 7)
        if not text or text == HL7_NULL:
            return {}
        try:
            return {"sent_at": utc_text(timestamp(text, self.settings.zone))}
        except ValueError:
            self.notes.append("MSH-7: unreadable message time: not used to order corrections")
            return {}

    def location(self, loc: str, number: int, *, required: bool = True) -> str | None:
        """A ``PL`` as text: point of care / room / bed (their first sub-components)."""
        parts = [value(self.pv1, number, 1, comp) for comp in (1, 2, 3)]
        text = "/".join(p for p in parts if p and p != HL7_NULL)[:TEXT_MAX]
        if not text:
            if required:
                self.problem(loc, "no location")
            return None
        return text

    def attendance(self, organisation: str | None) -> dict[str, Any]:
        """A04: a registration/attendance at the hospital, with whoever attended (PV1-7,
        a staff code), else the point of care (PV1-3.1), else the trigger itself."""
        who = next(
            (
                v
                for v in (value(self.pv1, 7, 1, 1), value(self.pv1, 3, 1, 1))
                if v and v != HL7_NULL
            ),
            "ADT-A04",
        )
        return {
            "setting": "acute",
            "mode": adt_codes.A04_MODE,
            "with": {"id": who, "role": adt_codes.A04_ROLE, "organisation": organisation},
        }

    def merge(self) -> dict[str, Any] | None:
        """A40: PID-3 names the survivor, MRG-1 the merged person (one pair per message),
        each by NHS number or local identifier."""
        if len(self.msg.segments("PID")) > 1 or self.count("MRG") > 1:
            self.problem("MRG", "one PID/MRG pair per A40 message is supported")
            return None
        nhs, local = self.person(segment(self.msg, "MRG"), "MRG-1")
        if nhs is not None:
            return {"merged_nhs_number": nhs}
        if local is not None:
            return {"merged_local_id": {"authority": local[0], "value": local[1]}}
        return None

    def count(self, name: str) -> int:
        return sum(1 for seg in self.msg if str(seg[0]) == name)

    # -- A08 -------------------------------------------------------------------------

    def identity_update(
        self,
        nhs: str | None,
        local: tuple[str, str] | None,
        organisation: str | None,
        system: str,
        occurred: datetime | None,
    ) -> IdentityUpdate | None:
        if self.errors or (nhs is None and local is None) or organisation is None:
            return None
        if occurred is None:
            return None
        sent: list[str] = []
        deleted: list[str] = []
        for name, seg in (("PID", self.pid), ("PV1", self.pv1)):
            for number in range(1, len(seg) if seg is not None else 0):
                text = present(seg, number)
                if text == HL7_NULL:
                    deleted.append(f"{name}-{number}")
                elif text:
                    sent.append(f"{name}-{number}")
        data = {"sent": sent, "deleted": deleted}
        event_id = self.event_id(adt_codes.IDENTITY_UPDATE, occurred, nhs, local, data)
        return IdentityUpdate(
            event_id,
            nhs,
            organisation,
            system,
            occurred,
            tuple(sent),
            tuple(deleted),
            local_id=local,
            control_id=self.control,
        )
