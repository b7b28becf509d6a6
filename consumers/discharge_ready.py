"""``DischargeReady`` from HL7 v2: where a hospital sends "medically fit to leave".

No standard ADT trigger means "medically optimised / no criteria to reside", so each
site says how it sends it, in ``CAREJOURNEY_ADT_DISCHARGE_READY`` (JSON; unset: A08s
stay identity updates only, docs/adt.md):

* ``segment``: the segment that carries the decision on an A08, a local Z-segment such
  as ``ZDR`` or a standard one such as ``PV2``;
* ``flag_field`` and ``flag`` (optional): only when that field's first component equals
  ``flag`` (e.g. PV2-3 *admit reason* ``MFFD`` for "medically fit for discharge");
* ``time_field`` (optional): the decision's time in that segment (else EVN-6, EVN-2,
  MSH-7, as for every ADT message);
* ``reason_field`` and ``reasons`` (optional): the local delay code and its meaning,
  local code -> ``social_care_assessment``, ``home_care_package``, ``care_home_place``,
  ``equipment``, ``family`` or ``other``; a code not in the table is ``other`` with the
  code kept in ``detail`` (liberal with real-world feeds: recorded, raw value kept).

An A08 that carries the decision becomes a ``DischargeReady`` for the encounter of
PV1-19 instead of an identity update.
"""

from __future__ import annotations

from typing import Any

from hl7 import Message
from pydantic import BaseModel, ConfigDict, Field

from consumers.hl7v2 import HL7_NULL, segment, value
from domain.contract import DelayReason


class Mapping(BaseModel):
    """One site's ``CAREJOURNEY_ADT_DISCHARGE_READY``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: str = Field(pattern=r"^(Z[A-Z0-9]{2}|[A-Z][A-Z0-9]{2})$")
    flag_field: int | None = Field(default=None, ge=1)
    flag: str | None = None
    time_field: int | None = Field(default=None, ge=1)
    reason_field: int | None = Field(default=None, ge=1)
    reasons: dict[str, DelayReason] = Field(default_factory=dict)


def mapping(config: dict[str, Any] | None) -> Mapping | None:
    """The validated mapping (a ``ValueError`` naming the problem), or None when unset."""
    return Mapping.model_validate(config) if config else None


def decision(message: Message, site: Mapping | None) -> dict[str, Any] | None:
    """``{"time": text|None, "data": {...}}`` when the message carries the decision, else
    None. ``data`` lacks ``encounter_id``, which the ADT mapper adds from PV1-19."""
    if site is None:
        return None
    seg = segment(message, site.segment)
    if seg is None:
        return None
    if site.flag_field is not None and value(seg, site.flag_field) != (site.flag or ""):
        return None
    data: dict[str, Any] = {}
    if site.reason_field is not None:
        code = value(seg, site.reason_field)
        if code and code != HL7_NULL:
            reason = site.reasons.get(code)
            data["delay_reason"] = (reason or DelayReason.OTHER).value
            if reason is None:
                data["detail"] = f"local delay code {code[:80]}"
    time = value(seg, site.time_field) if site.time_field is not None else ""
    return {"time": time if time and time != HL7_NULL else None, "data": data}
