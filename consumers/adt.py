"""HL7 v2 ADT message -> one contract envelope (domain/contract.py), an identity update, or a
rejection with its reasons.

Pure: no database, no broker. ``decode`` is the seam both doors use: ``carejourney adt
import`` (files) and ``carejourney consume --adt`` (topic ``care.adt.hl7v2``), through
``consumers/adt_ingest.py``. Every rule below is documented, with its tables, in
docs/adt.md:

* trigger from MSH-9.2 (EVN-1 may disagree: MSH wins and the result carries a note);
  A01/A02/A03/A04/A11/A12/A13/A40 become events, A08 an identity update, anything else
  is rejected as "unsupported trigger event";
* ``event_id`` = uuid5(ADT_NAMESPACE, "MSH-3|MSH-4|MSH-10") (namespace ids), so a resent
  message is a duplicate and a reused control id with other content is a conflict;
* NHS number from PID-3 by the rule in ``consumers/hl7v2.py``; none -> rejected;
* ``occurred_at`` from EVN-6, else EVN-2, else MSH-7, read in the configured zone when
  the value has no offset;
* source organisation = MSH-4.1 mapped to an ODS code by ``CAREJOURNEY_ADT_FACILITIES``;
  an unmapped facility is rejected by name. ``source.system`` = ``hl7v2:`` + MSH-3.1,
  ``source.setting`` = ``acute``; no ``recorded_by`` (a system feed).

A message with several problems reports them all, each located by its HL7 field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hl7.containers import Message, Segment

from consumers import adt_codes, discharge_ready
from consumers.hl7v2 import (
    HL7_NULL,
    Hl7Error,
    namespace,
    nhs_number,
    parse,
    present,
    segment,
    timestamp,
    value,
)
from domain.contract import SCHEMA_VERSION, ContractError, FieldError, parse_envelope, utc_text
from domain.settings import Settings

# Fixed for ever: changing it would turn every resent message into a new event.
ADT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:carejourney:hl7v2-adt")
SYSTEM_MAX = 100


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the ledger cannot take, with every reason found (``loc`` = HL7 field)."""

    errors: tuple[FieldError, ...]
    event_id: str | None = None
    trigger: str | None = None

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
    nhs_number: str
    organisation: str
    system: str
    occurred_at: datetime
    sent: tuple[str, ...]
    deleted: tuple[str, ...]
    trigger: str = adt_codes.IDENTITY_UPDATE


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message that became a contract envelope (a plain dict, as a publisher sends)."""

    envelope: dict[str, Any]
    trigger: str
    notes: tuple[str, ...] = field(default=())


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

    def problem(self, loc: str, msg: str) -> None:
        self.errors.append(FieldError(loc, msg))

    def run(self) -> Outcome:
        kind, trigger = value(self.msh, 9, 1, 1), value(self.msh, 9, 1, 2)
        if kind and kind != "ADT":
            return Rejected((FieldError("MSH-9.1", f"not an ADT message ({kind})"),))
        if not trigger:
            return Rejected((FieldError("MSH-9.2", "no trigger event"),))
        if trigger not in adt_codes.TRIGGERS:
            return Rejected(
                (FieldError("MSH-9.2", f"unsupported trigger event {trigger}"),), trigger=trigger
            )
        said = value(self.evn, 1)
        if said and said != trigger:
            self.notes.append(f"EVN-1 says {said}; MSH-9.2 ({trigger}) wins")
        event_id = self.event_id()
        organisation = self.organisation()
        nhs = self.nhs(self.pid, "PID-3")
        occurred = self.occurred_at()
        system = (adt_codes.ADT_SYSTEM_PREFIX + (namespace(self.msh, 3) or "adt"))[:SYSTEM_MAX]
        ready = None
        if trigger == adt_codes.IDENTITY_UPDATE:
            site = discharge_ready.mapping(self.settings.adt_discharge_ready)
            ready = discharge_ready.decision(self.msg, site)
            if ready is None:
                update = self.identity_update(event_id, nhs, organisation, system, occurred)
                return update if update is not None else self.rejected(event_id, trigger)
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
        if self.errors or event_id is None or nhs is None or occurred is None:
            return self.rejected(event_id, trigger)
        assert organisation is not None and data is not None
        envelope = {
            "event_id": event_id,
            "type": event_type,
            "schema_version": SCHEMA_VERSION,
            "nhs_number": nhs,
            "occurred_at": utc_text(occurred),
            "source": {"organisation": organisation, "system": system, "setting": "acute"},
            "data": data,
        }
        try:
            parse_envelope(envelope)
        except ContractError as exc:  # e.g. a ward name longer than the contract allows
            self.errors.extend(exc.errors)
            return self.rejected(event_id, trigger)
        return Decoded(envelope, trigger, tuple(self.notes))

    def rejected(self, event_id: str | None, trigger: str) -> Rejected:
        return Rejected(tuple(self.errors), event_id, trigger)

    # -- the envelope fields ---------------------------------------------------------

    def event_id(self) -> str | None:
        control = value(self.msh, 10)
        if not control:
            self.problem("MSH-10", "no message control id")
            return None
        key = f"{namespace(self.msh, 3)}|{namespace(self.msh, 4)}|{control}"
        return str(uuid.uuid5(ADT_NAMESPACE, key))

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
        if trigger == "A01":
            method = self.coded("PV1-4", 4, adt_codes.ADMISSION_METHODS, "admission method")
            ward = value(self.pv1, 3, 1, 1)
            data = {"encounter_id": encounter, "hospital": organisation, "method": method}
            return data | ({"ward": ward} if ward and ward != HL7_NULL else {})
        if trigger == "A02":
            return {
                "encounter_id": encounter,
                "from_location": self.location("PV1-6", 6),
                "to_location": self.location("PV1-3", 3),
            }
        if trigger == "A03":
            destination = self.coded(
                "PV1-36",
                36,
                adt_codes.DISCHARGE_DESTINATIONS,
                "discharge destination",
                default=adt_codes.DESTINATION_NOT_KNOWN,
            )
            return {"encounter_id": encounter, "destination": destination}
        return {"encounter_id": encounter}  # A11, A12, A13

    def field(self, seg: Segment | None, loc: str, number: int) -> str | None:
        text = value(seg, number)
        if not text or text == HL7_NULL:
            what = {"PV1-19": "encounter id (visit number)"}.get(loc, "value")
            self.problem(loc, f"no {what}" if seg is not None else f"no {loc[:3]} segment")
            return None
        return text

    def coded(
        self, loc: str, number: int, table: dict[str, str], what: str, default: str | None = None
    ) -> str | None:
        code = value(self.pv1, number)
        if (not code or code == HL7_NULL) and default is not None:
            code = default
        if code in table:
            return table[code]
        shown = f"code {code!r}" if code else "no code"
        self.problem(loc, f"{what}: {shown} is not in the table (known: {', '.join(table)})")
        return None

    def location(self, loc: str, number: int) -> str | None:
        """A ``PL`` as text: point of care / room / bed (their first sub-components)."""
        parts = [value(self.pv1, number, 1, comp) for comp in (1, 2, 3)]
        text = "/".join(p for p in parts if p and p != HL7_NULL)
        if not text:
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
        """A40: PID-3 names the survivor, MRG-1 the merged person (one pair per message)."""
        if len(self.msg.segments("PID")) > 1 or self.count("MRG") > 1:
            self.problem("MRG", "one PID/MRG pair per A40 message is supported")
            return None
        merged = self.nhs(segment(self.msg, "MRG"), "MRG-1")
        return None if merged is None else {"merged_nhs_number": merged}

    def count(self, name: str) -> int:
        return sum(1 for seg in self.msg if str(seg[0]) == name)

    # -- A08 -------------------------------------------------------------------------

    def identity_update(
        self,
        event_id: str | None,
        nhs: str | None,
        organisation: str | None,
        system: str,
        occurred: datetime | None,
    ) -> IdentityUpdate | None:
        if self.errors or event_id is None or nhs is None or organisation is None:
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
        return IdentityUpdate(
            event_id, nhs, organisation, system, occurred, tuple(sent), tuple(deleted)
        )
