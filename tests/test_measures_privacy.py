"""Pseudonyms and small-number suppression (projections/measures/privacy.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.measures.privacy import Suppression, pseudonym
from projections.measures.result import Shape
from tests.fixtures_measures import Measured, group
from tests.journeys import Journey


def test_counts_one_to_seven_are_suppressed_others_rounded_to_five() -> None:
    rule = Suppression(7, 5)
    assert [rule.count(n) for n in range(0, 9)] == [0, None, None, None, None, None, None, None, 10]
    # Nearest multiple of 5: 12 -> 10, 13 -> 15, 17 -> 15, 18 -> 20, 22 -> 20, 23 -> 25.
    assert [rule.count(n) for n in (9, 10, 12, 13, 17, 18, 22, 23, 1234)] == [
        10,
        10,
        10,
        15,
        15,
        20,
        20,
        25,
        1235,
    ]
    assert Suppression(3, 1).count(4) == 4  # configurable: suppress 1-3, no rounding
    assert Suppression(0, 10).count(1) == 0  # no suppression, rounding to 10
    assert Suppression(2, 2).count(3) == 4  # halves round up


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=1, max_value=50),
)
def test_suppression_rule_holds_for_any_count(n: int, hidden: int, base: int) -> None:
    shown = Suppression(hidden, base).count(n)
    if 1 <= n <= hidden:
        assert shown is None
    else:
        assert shown is not None and shown % base == 0 and abs(shown - n) <= base / 2


def test_rates_and_statistics_follow_their_counts() -> None:
    rule = Suppression(7, 5)
    shape = Shape(
        counts=("num", "den", "units"), rates={"pct": ("num", "den")}, stats={"median": "units"}
    )
    # 3 of 40: the rate uses the exact counts but is hidden because 3 is.
    assert rule.row({"num": 3, "den": 40, "pct": 7.5, "units": 40, "median": 2.0}, shape) == {
        "num": None,
        "den": 40,
        "pct": None,
        "units": 40,
        "median": 2.0,
    }
    # 12 of 41: shown as 10 of 40, the rate stays 29.3 (from 12 / 41, not 10 / 40).
    assert rule.row({"num": 12, "den": 41, "pct": 29.3, "units": 5, "median": 2.0}, shape) == {
        "num": 10,
        "den": 40,
        "pct": 29.3,
        "units": None,
        "median": None,
    }
    # Zero is not a small number: 0 of 9 shows.
    assert (
        rule.row({"num": 0, "den": 9, "pct": 0.0, "units": 9, "median": 1.0}, shape)["pct"] == 0.0
    )


def test_pseudonyms_are_keyed_hmacs_of_the_internal_id() -> None:
    patient = uuid.UUID("6f1c1d3e-8a4b-4c59-9d8e-1f2a3b4c5d6e")
    expected = hmac.new(b"secret-one", str(patient).encode(), hashlib.sha256).hexdigest()
    assert pseudonym(patient, "secret-one") == expected
    assert pseudonym(str(patient), "secret-one") == expected  # stable whatever the type
    assert pseudonym(patient, "secret-two") != expected  # keyed
    assert len(expected) == 64


def test_evaluator_output_is_suppressed_and_pseudonymised(measured: Measured) -> None:
    people = []
    for i in range(12):  # 12 discharged home, 3 readmitted on day 2
        person = Journey(60 + i)
        person.admit("2025-04-01 10:00", f"E{i}")
        person.discharge("2025-04-05 10:00", f"E{i}")
        if i < 3:
            person.admit("2025-04-07 10:00", f"R{i}")
        people.append(person)
    measured.record(*people)

    exact = measured.report("2025-03-01", "2025-08-31")
    assert group(exact, "readmission_30d")["discharges"] == 12
    assert group(exact, "readmission_30d")["readmitted"] == 3
    assert group(exact, "readmission_30d")["readmission_pct"] == 25.0

    shown = measured.report("2025-03-01", "2025-08-31", unsuppressed=False, per_person=True)
    readmission = group(shown, "readmission_30d")
    assert readmission["discharges"] == 10 and readmission["readmitted"] is None
    assert readmission["readmission_pct"] is None  # 3 is suppressed, so is the rate
    assert shown["suppression"] == {"applied": True, "suppressed_counts": "1-7", "rounded_to": 5}

    text = json.dumps(shown)
    key = measured.settings.pseudonym_key
    ids = [measured.ledger.patient_id(p.nhs) for p in people]
    for person, patient in zip(people, ids, strict=True):
        assert person.nhs not in text and str(patient) not in text
    rows = shown["measures"]["readmission_30d"]["per_person"]
    assert sorted(r["pseudonym"] for r in rows) == sorted(pseudonym(p, key) for p in ids)
    readmitted = {r["pseudonym"] for r in rows if r["readmitted"]}
    assert readmitted == {pseudonym(p, key) for p in ids[:3]}

    # Erasure removes the NHS number from the register; the history stays in the
    # measures under the same, now unlinkable, pseudonym (docs/measures.md, "Pseudonyms and
    # small numbers").
    measured.ledger.erase(people[0].nhs)
    assert measured.ledger.patient_id(people[0].nhs) is None
    after = measured.report("2025-03-01", "2025-08-31", unsuppressed=False, per_person=True)
    assert after["measures"] == shown["measures"]
