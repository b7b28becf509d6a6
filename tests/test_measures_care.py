"""Referral waits, care plans, continuity of care and outcome change, by hand.

Period 1 March to 30 April 2025 (BST from 30 March).
"""

from __future__ import annotations

import pytest

from projections.measures.continuity import bice_boxerman, usual_provider
from tests.fixtures_measures import Measured, group, without_series
from tests.journeys import Journey

FIRST, LAST = "2025-03-01", "2025-04-30"


def test_referral_waits(measured: Measured) -> None:
    p = Journey(21)
    p.refer("2025-03-02 10:00", "R1", to="RYX01")
    p.first_contact("2025-03-12 10:00", "R1")  # 10 days
    p.refer("2025-03-03 23:30", "R2", to="RYX01")
    p.first_contact("2025-03-04 00:10", "R2")  # next local day: 1 day
    p.refer("2025-03-10 10:00", "R3", to="RV505", setting="mental_health")
    p.first_contact("2025-04-20 10:00", "R3")  # 41 days
    p.refer("2025-03-15 10:00", "R4", to="RYX01")
    p.decline("2025-03-20 10:00", "R4")  # declined: no wait
    p.refer("2025-04-10 10:00", "R5", to="RYX01")  # open: 20 days by 30 April
    p.refer("2025-03-01 10:00", "R6", to="RYX01")  # open: 60 days, over 28
    p.refer("2025-03-25 10:00", "R7", to="RYX01")
    p.first_contact("2025-05-05 10:00", "R7")  # after the period: open, 36 days, over
    p.refer("2025-02-20 10:00", "R8", to="RYX01")  # before the period: not counted
    # BST: referred 23:30 UTC on 1 April (00:30 on the 2nd in London), contacted 22:30
    # UTC on 2 April (23:30 on the 2nd): 0 days locally (1 by UTC dates).
    p.refer("2025-04-01T23:30+00:00", "R9", to="RYX01")
    p.first_contact("2025-04-02T22:30+00:00", "R9")
    measured.record(p)

    report = measured.report(FIRST, LAST, by="organisation")
    # Completed waits [10, 1, 41, 0]: median (1 + 10) / 2 = 5.5; p90 = the ceil(3.6) =
    # 4th smallest = 41; within 28 days: 10, 1, 0 = 3 of 4 = 75%.
    assert group(report, "referral_waits") == {
        "group": "all",
        "referrals": 8,
        "completed": 4,
        "median_days": 5.5,
        "p90_days": 41.0,
        "within_threshold": 3,
        "within_threshold_pct": 75.0,
        "threshold_days": 28,
        "incomplete": 3,
        "incomplete_over_threshold": 2,
        "declined": 1,
    }
    # By receiving organisation: RV505 received only R3.
    assert group(report, "referral_waits", "RV505")["median_days"] == 41.0
    assert group(report, "referral_waits", "RYX01")["completed"] == 3

    # A 10-day threshold: 10, 1, 0 within; R5 (20 days open) is now over it too.
    tighter = measured.report(FIRST, LAST, wait_threshold_days=10)
    assert group(tighter, "referral_waits")["within_threshold"] == 3
    assert group(tighter, "referral_waits")["incomplete_over_threshold"] == 3


def test_care_plans_in_place_and_reviewed(measured: Measured) -> None:
    # K1: due 10 March, reviewed 8 March (on time), next due 8 April, reviewed 15 April
    # (late), next due 15 July (after the period). Active at the end.
    k1 = Journey(31)
    k1.plan("2025-01-10 10:00", "P1", "2025-03-10")
    k1.review("2025-03-08 10:00", "P1", "2025-04-08")
    k1.review("2025-04-15 10:00", "P1", "2025-07-15")
    # K2: due 20 March, never reviewed. Active at the end.
    k2 = Journey(32)
    k2.plan("2025-02-01 10:00", "P2", "2025-03-20")
    # K3: closed 15 March before its 1 April due date: owes no review; no plan at the end.
    k3 = Journey(33)
    k3.plan("2025-02-01 10:00", "P3", "2025-04-01")
    k3.close_plan("2025-03-15 10:00", "P3")
    # K4: no plan.
    k4 = Journey(34)
    # K5: due 20 April; reviewed at 00:30 BST on 21 April (23:30 UTC on the 20th): late
    # by the London date. Active at the end.
    k5 = Journey(35)
    k5.plan("2025-02-01 10:00", "P5", "2025-04-20")
    k5.review("2025-04-20T23:30+00:00", "P5", "2025-10-20")
    # K6: journey closed 10 April with a plan due 25 April: neither in place (no open
    # journey at the end) nor a review owed.
    k6 = Journey(36)
    k6.plan("2025-02-01 10:00", "P6", "2025-04-25")
    k6.close("2025-04-10 10:00")
    measured.record(k1, k2, k3, k4, k5, k6)

    report = measured.report(FIRST, LAST)
    # Open journeys at 23:59 on 30 April: K1-K5 = 5; with an active plan K1, K2, K5 = 3.
    assert group(report, "care_plan_in_place") == {
        "group": "all",
        "people": 5,
        "with_plan": 3,
        "with_plan_pct": 60.0,
    }
    # Due in the period: K1 10 Mar (on time), K1 8 Apr (late), K2 20 Mar (not reviewed),
    # K5 20 Apr (late) = 4; on time 1 = 25%.
    assert group(report, "care_plan_reviews") == {
        "group": "all",
        "reviews_due": 4,
        "on_time": 1,
        "on_time_pct": 25.0,
        "late": 2,
        "not_reviewed": 1,
    }
    # At the end of March: K1's 10 March review on time, K2's 20 March not done; K1's
    # 8 April review is not due yet. In place on 31 March: K1, K2, K5, K6 (K3 closed).
    march = measured.report(FIRST, "2025-03-31")
    assert group(march, "care_plan_reviews")["reviews_due"] == 2
    assert group(march, "care_plan_in_place")["with_plan"] == 4


def test_continuity_of_care_indices() -> None:
    # Worked by hand: 3 contacts with A and 1 with B: (9 + 1 - 4) / (4 * 3) = 0.5.
    assert bice_boxerman([3, 1]) == 0.5
    assert bice_boxerman([1, 1, 1]) == 0.0
    assert bice_boxerman([2]) == 1.0
    assert bice_boxerman([1]) is None  # undefined for N < 2
    assert usual_provider([3, 1]) == 0.75
    assert usual_provider([1, 1, 1]) == pytest.approx(1 / 3)


def test_continuity_over_contacts(measured: Measured) -> None:
    n1 = Journey(41)  # A, A, A, B: COC 0.5, UPC 0.75
    for at, who in (("03-02", "A"), ("03-09", "A"), ("03-16", "A"), ("03-23", "B")):
        n1.contact(f"2025-{at} 10:00", who)
    n2 = Journey(42)  # A, B, C: COC 0, UPC 1/3
    for at, who in (("03-02", "A"), ("03-09", "B"), ("03-16", "C")):
        n2.contact(f"2025-{at} 10:00", who)
    n3 = Journey(43)  # A, A: COC 1, UPC 1
    n3.contact("2025-03-02 10:00", "A")
    n3.contact("2025-04-02 10:00", "A")
    n4 = Journey(44)  # one contact: excluded (COC undefined)
    n4.contact("2025-03-02 10:00", "A")
    n5 = Journey(45)  # A, A and an ADT A04 attendance (not counted): COC 1, UPC 1
    n5.contact("2025-03-02 10:00", "A")
    n5.contact("2025-03-03 10:00", "A")
    n5.contact("2025-03-04 10:00", "X", setting="acute", system="hl7v2:PAS", organisation="RXH01")
    n6 = Journey(46)  # one contact in the period, one before it: excluded
    n6.contact("2025-02-20 10:00", "A")
    n6.contact("2025-03-20 10:00", "B")
    measured.record(n1, n2, n3, n4, n5, n6)

    continuity = group(measured.report(FIRST, LAST), "continuity")
    # COC [0.5, 0, 1, 1]: median (0.5 + 1) / 2 = 0.75; UPC [0.75, 1/3, 1, 1]: 0.875.
    assert without_series(continuity) == {
        "group": "all",
        "people": 4,
        "one_contact": 2,
        "median_coc": 0.75,
        "median_upc": 0.875,
    }
    bins = {d["label"]: (d["coc_people"], d["upc_people"]) for d in continuity["distribution"]}
    assert bins["0.0-0.1"] == (1, 0)
    assert bins["0.3-0.4"] == (0, 1)
    assert bins["0.5-0.6"] == (1, 0)
    assert bins["0.7-0.8"] == (0, 1)
    assert bins["0.9-1.0"] == (2, 2)


def test_outcome_change_per_instrument(measured: Measured) -> None:
    o1 = Journey(51)
    o1.outcome("2025-03-05 10:00", "P3CEQ", 12)
    o1.outcome("2025-04-01 10:00", "P3CEQ", 15)
    o1.outcome("2025-04-20 10:00", "P3CEQ", 18)  # change 18 - 12 = +6
    o1.outcome("2025-03-05 10:05", "EQ-5D-5L", 0.5)
    o1.outcome("2025-04-25 10:00", "EQ-5D-5L", 0.6)  # +0.1
    o2 = Journey(52)
    o2.outcome("2025-03-10 10:00", "P3CEQ", 20)
    o2.outcome("2025-04-10 10:00", "P3CEQ", 17)  # -3
    o3 = Journey(53)
    o3.outcome("2025-02-01 10:00", "P3CEQ", 10)  # before the period
    o3.outcome("2025-03-15 10:00", "P3CEQ", 14)  # the only one inside: single
    measured.record(o1, o2, o3)

    report = measured.report(FIRST, LAST)
    # P3CEQ: first (12 + 20) / 2 = 16, last (18 + 17) / 2 = 17.5, change (6 - 3) / 2 = 1.5.
    assert group(report, "outcome_change", "P3CEQ") == {
        "group": "P3CEQ",
        "instrument": "P3CEQ",
        "people": 2,
        "single_recording": 1,
        "mean_first": 16.0,
        "mean_last": 17.5,
        "mean_change": 1.5,
        "median_change": 1.5,
    }
    eq5d = group(report, "outcome_change", "EQ-5D-5L")
    assert eq5d["people"] == 1
    assert eq5d["mean_change"] == pytest.approx(0.1)
