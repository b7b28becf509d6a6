"""HL7 v2 "ready for discharge", configured per site (consumers/discharge_ready.py): an
A08 carrying the site's segment becomes ``DischargeReady``; without a mapping, or
without the segment, an A08 stays an identity update."""

from __future__ import annotations

import pytest

from consumers.adt import Decoded, IdentityUpdate, Rejected, decode
from domain.contract import parse_envelope
from domain.settings import Settings
from tests.adt_messages import FACILITIES, adt

ZDR = {
    "segment": "ZDR",
    "time_field": 1,
    "reason_field": 2,
    "reasons": {"SCA": "social_care_assessment", "HCP": "home_care_package"},
}


def settings(mapping: dict | None) -> Settings:
    return Settings(adt_facilities=FACILITIES, adt_discharge_ready=mapping)


def with_segment(extra: str) -> str:
    return adt("A08") + extra + "\r"


def test_a08_with_the_sites_z_segment_is_discharge_ready() -> None:
    found = decode(with_segment("ZDR|20260305093000|HCP"), settings(ZDR))
    assert isinstance(found, Decoded)
    envelope = found.envelope
    assert envelope["type"] == "DischargeReady"
    assert envelope["data"] == {"encounter_id": "V100", "delay_reason": "home_care_package"}
    assert envelope["occurred_at"] == "2026-03-05T09:30:00Z"  # the decision's time (GMT)
    parse_envelope(envelope)  # the contract's own check


def test_an_unknown_local_code_is_other_with_the_code_kept() -> None:
    found = decode(with_segment("ZDR||XYZ"), settings(ZDR))
    assert isinstance(found, Decoded)
    assert found.envelope["data"] == {
        "encounter_id": "V100",
        "delay_reason": "other",
        "detail": "local delay code XYZ",
    }
    assert found.envelope["occurred_at"] == "2026-03-02T10:15:00Z"  # EVN-6


def test_a_pv2_flag_mapping() -> None:
    site = {"segment": "PV2", "flag_field": 3, "flag": "MFFD"}
    ready = decode(with_segment("PV2|||MFFD^Medically fit"), settings(site))
    assert isinstance(ready, Decoded) and ready.envelope["type"] == "DischargeReady"
    assert ready.envelope["data"] == {"encounter_id": "V100"}
    other = decode(with_segment("PV2|||ELSE"), settings(site))
    assert isinstance(other, IdentityUpdate)


@pytest.mark.parametrize("mapping", [None, ZDR])
def test_without_the_mapping_or_the_segment_an_a08_is_an_identity_update(mapping) -> None:
    assert isinstance(decode(adt("A08"), settings(mapping)), IdentityUpdate)


def test_a_bad_decision_time_is_rejected_with_the_reason() -> None:
    found = decode(with_segment("ZDR|not-a-time|HCP"), settings(ZDR))
    assert isinstance(found, Rejected)
    assert any(e.loc == "discharge ready time" for e in found.errors)
