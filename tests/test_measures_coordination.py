"""Time to a named coordinator, uncovered days and handoffs on hand-built journeys.

Period 1 March to 30 April 2025 (61 days: 31 + 30); clocks go forward in London at
01:00 GMT on 30 March, so 23:59 local is 23:59 UTC before that and 22:59 UTC after.
"""

from __future__ import annotations

from tests.fixtures_measures import Measured, group, without_series
from tests.journeys import Journey

FIRST, LAST = "2025-03-01", "2025-04-30"


def cohort() -> list[Journey]:
    # C1: identified 3 March, named 13 March 15:00 (wait 10 days). Covered from 13 March
    # (15:00 is before 23:59): uncovered 1-12 March = 12 days, covered 19 + 30 = 49.
    c1 = Journey(11, registered="2025-01-10 09:00")
    c1.identify("2025-03-03 10:00")
    c1.assign("2025-03-13 15:00", "N100")
    # C2: registered 5 March 12:00; first referral 6 March (never identified); named at
    # 23:59:30 on 20 March: too late to cover the 20th; wait 20 - 6 = 14 days. Handed off
    # 10 April, released 20 April 10:00. Person-days 5-31 March (27) + April (30) = 57;
    # covered 21 March - 19 April = 11 + 19 = 30; uncovered 16 + 11 = 27.
    c2 = Journey(12, registered="2025-03-05 12:00")
    c2.refer("2025-03-06 10:00", "R1")
    c2.assign(
        "2025-03-20 23:59:30",
        "N1",
        role="practice_nurse",
        organisation="A81001",
        setting="primary_care",
    )
    c2.hand_off("2025-04-10 11:00", "N1", "N2")
    c2.release("2025-04-20 10:00", "N2")
    # C3: named since 5 February, identified 10 March: wait 0 (named at start); all 61
    # days covered.
    c3 = Journey(13, registered="2025-02-01 09:00")
    c3.assign(
        "2025-02-05 09:00", "S1", role="social_worker", organisation="LA301", setting="social_care"
    )
    c3.identify("2025-03-10 09:00")
    # C4: registered 15 March, identified 1 April, never named: incomplete; 17 + 30 = 47
    # person-days, all uncovered.
    c4 = Journey(14, registered="2025-03-15 09:00")
    c4.identify("2025-04-01 09:00")
    # C5: registered 29 March; named at 23:30 UTC on 30 March = 00:30 BST on 31 March, so
    # nobody was named at 23:59 London time on the 30th (in UTC it would look covered);
    # journey closed 5 April 10:00 (that day does not count). Person-days 29 March -
    # 4 April = 7; covered 31 March - 4 April = 5. Not in "time to coordinator".
    c5 = Journey(15, registered="2025-03-29 10:00")
    c5.assign("2025-03-30T23:30+00:00", "N5")
    c5.close("2025-04-05 10:00")
    return [c1, c2, c3, c4, c5]


def test_time_to_named_coordinator(measured: Measured) -> None:
    measured.record(*cohort())
    report = measured.report(FIRST, LAST, by="role")
    waits = group(report, "time_to_coordinator")
    # Clocks starting in the period: C1, C2, C3, C4; waits 10, 14, 0; C4 incomplete.
    # Median of [0, 10, 14] = 10; nearest-rank p90 = the ceil(2.7) = 3rd value = 14.
    assert without_series(waits) == {
        "group": "all",
        "people": 4,
        "named": 3,
        "incomplete": 1,
        "named_at_start": 1,
        "median_days": 10.0,
        "p90_days": 14.0,
    }
    assert {d["label"]: d["people"] for d in waits["distribution"]} == {
        "0": 1,
        "1-7": 0,
        "8-14": 2,
        "15-30": 0,
        "31-60": 0,
        "61-90": 0,
        "91+": 0,
    }
    # By the first named coordinator's role: C2's was a practice nurse; C4 has none.
    assert group(report, "time_to_coordinator", "practice_nurse")["median_days"] == 14.0
    assert group(report, "time_to_coordinator", "none")["incomplete"] == 1


def test_uncovered_days_and_handoffs(measured: Measured) -> None:
    measured.record(*cohort())
    report = measured.report(FIRST, LAST)
    # Person-days 61 + 57 + 61 + 47 + 7 = 233; covered 49 + 30 + 61 + 0 + 5 = 145
    # (62.2%); uncovered 12 + 27 + 0 + 47 + 2 = 88.
    coverage = group(report, "coverage")
    assert without_series(coverage) == {
        "group": "all",
        "people": 5,
        "people_with_uncovered_days": 4,
        "person_days": 233,
        "covered_days": 145,
        "uncovered_days": 88,
        "covered_pct": 62.2,
    }
    # March: person-days 31 + 27 + 31 + 17 + 3 = 109, covered 19 + 11 + 31 + 0 + 1 = 62;
    # April: 30 + 30 + 30 + 30 + 4 = 124, covered 30 + 19 + 30 + 0 + 4 = 83.
    assert coverage["by_month"] == [
        {
            "month": "2025-03",
            "person_days": 109,
            "covered_days": 62,
            "uncovered_days": 47,
            "covered_pct": 56.9,
        },
        {
            "month": "2025-04",
            "person_days": 124,
            "covered_days": 83,
            "uncovered_days": 41,
            "covered_pct": 66.9,
        },
    ]
    # One handoff (C2, 10 April); people with a covered day: C1, C2, C3, C5 = 4;
    # per person 1 / 4 = 0.25; per 100 covered person-days 100 / 145 = 0.69.
    assert group(report, "handoffs") == {
        "group": "all",
        "handoffs": 1,
        "people": 4,
        "covered_days": 145,
        "per_person": 0.25,
        "per_100_person_days": 0.69,
    }

    by_org = measured.report(FIRST, LAST, by="organisation")
    # The handoff belongs to the coordinator handing off (N1, practice A81001), whose
    # covered days are C2's 21 March - 9 April = 11 + 9 = 20.
    assert group(by_org, "handoffs", "A81001") == {
        "group": "A81001",
        "handoffs": 1,
        "people": 1,
        "covered_days": 20,
        "per_person": 1.0,
        "per_100_person_days": 5.0,
    }
    # Uncovered days go to the registered practice (A81001 for everyone here).
    assert group(by_org, "coverage", "A81001")["uncovered_days"] == 88

    # Calendar days in another zone: in UTC, C5's 30 March is covered (23:30 < 23:59).
    utc = measured.settings.model_copy(update={"timezone": "UTC"})
    from datetime import date

    from projections import measures

    period = measures.Period.checked(date(2025, 3, 1), date(2025, 4, 30), utc.zone)
    with measured.ledger.connection() as conn:
        in_utc = measures.report(conn, period, utc, unsuppressed=True)
    assert group(in_utc, "coverage")["covered_days"] == 145 + 1
