"""Readmission and follow-up after discharge on hand-built journeys (docs/measures.md).

Every expected value is worked out by hand in the comments. The period is 1 March to
31 August 2025; British Summer Time runs from 30 March to 26 October 2025, so most of
these times are UTC+1 in London.
"""

from __future__ import annotations

from tests.fixtures_measures import Measured, group, without_series
from tests.journeys import Journey

FIRST, LAST = "2025-03-01", "2025-08-31"


def test_readmission_within_30_days(measured: Measured) -> None:
    # P1: discharged home 5 April; emergency readmission 4 May = day 29: counts.
    p1 = Journey(1)
    p1.admit("2025-04-01 10:00", "E1")
    p1.discharge("2025-04-05 11:00", "E1")
    p1.admit("2025-05-04 09:00", "E1b")  # left open: not itself a discharge
    # P2: discharged 5 April; emergency readmission 5 May = day 30: does not count.
    p2 = Journey(2)
    p2.admit("2025-04-01 10:00", "E2")
    p2.discharge("2025-04-05 11:00", "E2")
    p2.admit("2025-05-05 08:00", "E2b")
    # P3: discharged 10 April 10:00, emergency admission 18:00 the same day: day 0, counts.
    p3 = Journey(3)
    p3.admit("2025-04-08 10:00", "E3")
    p3.discharge("2025-04-10 10:00", "E3")
    p3.admit("2025-04-10 18:00", "E3b")
    # P4: died in hospital: never an index discharge (deaths = 1).
    p4 = Journey(4)
    p4.admit("2025-04-10 10:00", "E4")
    p4.discharge("2025-04-12 03:00", "E4", destination="died")
    p4.close("2025-04-13 10:00", reason="died")
    # P5: RXH01 -> other hospital, admitted to RYR16 by transfer 2 hours later, home
    # from RYR16 on 10 May: ONE index discharge, by RYR16; the transfer is no readmission.
    p5 = Journey(5)
    p5.admit("2025-05-01 08:00", "E5")
    p5.discharge("2025-05-03 14:00", "E5", destination="other_hospital")
    p5.admit("2025-05-03 16:00", "T5", method="transfer", hospital="RYR16")
    p5.discharge("2025-05-10 12:00", "T5", hospital="RYR16")
    # P6: an elective admission 9 days after discharge is not a readmission.
    p6 = Journey(6)
    p6.admit("2025-05-28 10:00", "E6")
    p6.discharge("2025-06-01 10:00", "E6")
    p6.admit("2025-06-10 08:00", "E6b", method="elective")
    # P7: discharged 10 August: 10 Aug + 29 = 8 Sep is after 31 Aug: incomplete.
    p7 = Journey(7)
    p7.admit("2025-08-08 10:00", "E7")
    p7.discharge("2025-08-10 10:00", "E7")
    # P8: BST: discharged 23:30 UTC on 30 June = 00:30 on 1 July in London; emergency
    # admission 22:30 UTC on 30 July = 23:30 on 30 July in London: local day 29 (counts);
    # counted in UTC dates it would be day 30 and missed.
    p8 = Journey(8)
    p8.admit("2025-06-28 10:00", "E8")
    p8.discharge("2025-06-30T23:30+00:00", "E8")
    p8.admit("2025-07-30T22:30+00:00", "E8b")
    # P9: discharged to another hospital and never seen admitted there: transferred out.
    p9 = Journey(9)
    p9.admit("2025-06-10 10:00", "E9")
    p9.discharge("2025-06-15 10:00", "E9", destination="other_hospital")
    measured.record(p1, p2, p3, p4, p5, p6, p7, p8, p9)

    report = measured.report(FIRST, LAST, by="organisation")
    # Complete index discharges: P1, P2, P3, P5, P6, P8 = 6; readmitted P1, P3, P8 = 3.
    assert without_series(group(report, "readmission_30d")) == {
        "group": "all",
        "discharges": 6,
        "readmitted": 3,
        "readmission_pct": 50.0,
        "incomplete": 1,
        "deaths": 1,
        "transferred_out": 1,
    }
    # By discharging hospital: RXH01 has P1, P2, P3, P6, P8 (3 readmitted) and P4, P7, P9.
    assert without_series(group(report, "readmission_30d", "RXH01")) == {
        "group": "RXH01",
        "discharges": 5,
        "readmitted": 3,
        "readmission_pct": 60.0,
        "incomplete": 1,
        "deaths": 1,
        "transferred_out": 1,
    }
    assert group(report, "readmission_30d", "RYR16")["discharges"] == 1
    assert group(report, "readmission_30d", "RYR16")["readmitted"] == 0

    # A period ending 2 June: P5 (10 May + 29 = 8 June) and P6 (1 June) are incomplete
    # now, P7 and P8 outside the period; P1's day-29 readmission (4 May) is inside it.
    short = measured.report(FIRST, "2025-06-02")
    assert group(short, "readmission_30d")["discharges"] == 3  # P1, P2, P3
    assert group(short, "readmission_30d")["readmitted"] == 2  # P1, P3
    assert group(short, "readmission_30d")["incomplete"] == 2  # P5, P6


def test_follow_up_after_discharge_home(measured: Measured) -> None:
    journeys = []

    def discharged(
        index: int, at: str = "2025-04-07 14:00", destination: str = "usual_residence"
    ) -> Journey:
        person = Journey(index)
        person.admit("2025-03-25 10:00", f"F{index}")
        person.discharge(at, f"F{index}", destination=destination)
        journeys.append(person)
        return person

    # F1: a contact later on the discharge day never counts: none.
    discharged(1).contact("2025-04-07 18:00")
    # F2: next morning (day 1, 19 hours): 7 days yes, 72 hours yes.
    discharged(2).contact("2025-04-08 09:00")
    # F3: day 3 at 13:00 (71 hours): both.
    discharged(3).contact("2025-04-10 13:00")
    # F4: day 3 at 15:00 (73 hours): 7 days only.
    discharged(4).contact("2025-04-10 15:00")
    # F5: day 7 at 23:00: 7 days only.
    discharged(5).contact("2025-04-14 23:00")
    # F6: day 8: neither.
    discharged(6).contact("2025-04-15 08:00")
    # F7: an HL7 A04 attendance (ADT system) never counts: none.
    discharged(7).contact(
        "2025-04-08 10:00", "ADT-A04", setting="acute", system="hl7v2:PAS", organisation="RXH01"
    )
    # F8: readmitted (day 2) before the first contact (day 5): readmitted first, both.
    f8 = discharged(8)
    f8.admit("2025-04-09 10:00", "F8b")
    f8.contact("2025-04-12 10:00")
    # F9: discharged to a care home: not in either denominator.
    discharged(9, destination="care_home").contact("2025-04-08 09:00")
    # F10: discharged 28 August 14:00: 7 days incomplete (4 Sep > 31 Aug); 72 hours end
    # 31 Aug 14:00, inside the period: complete, no contact: none.
    discharged(10, at="2025-08-28 14:00")
    # F11: 72 hours are hours, not wall-clock: discharged 12:00 GMT on 28 March; clocks
    # go forward on 30 March; a contact at 12:30 BST on 31 March is 71.5 hours later.
    discharged(11, at="2025-03-28 12:00").contact("2025-03-31 12:30")
    measured.record(*journeys)

    report = measured.report(FIRST, LAST)
    # 7 days: complete F1-F8, F11 = 9; followed up F2, F3, F4, F5, F11 = 5 (55.6%);
    # readmitted first F8; incomplete F10.
    assert without_series(group(report, "follow_up_7d")) == {
        "group": "all",
        "discharges": 9,
        "followed_up": 5,
        "follow_up_pct": 55.6,
        "readmitted_first": 1,
        "incomplete": 1,
    }
    # 72 hours: complete F1-F8, F10, F11 = 10; followed up F2, F3, F11 = 3 (30%).
    assert without_series(group(report, "follow_up_72h")) == {
        "group": "all",
        "discharges": 10,
        "followed_up": 3,
        "follow_up_pct": 30.0,
        "readmitted_first": 1,
        "incomplete": 0,
    }

    per_person = measured.report(FIRST, LAST, per_person=True)
    statuses = sorted(r["status"] for r in per_person["measures"]["follow_up_7d"]["per_person"])
    assert statuses == sorted(
        [
            "none",
            "followed_up",
            "followed_up",
            "followed_up",
            "followed_up",
            "none",
            "none",
            "readmitted_first",
            "incomplete",
            "followed_up",
        ]
    )


def ready(journey: Journey, at: str, encounter: str, reason: str | None, hospital: str = "RXH01"):
    data = {"encounter_id": encounter, **({"delay_reason": reason} if reason else {})}
    return journey.add("DischargeReady", at, data, organisation=hospital, setting="acute")


def test_delayed_discharge_days_by_reason_and_hospital(measured: Measured) -> None:
    # P1: ready 3 April (equipment), a later decision 5 April says home care package;
    # discharged 10 April: 7 days, reason home_care_package (the latest).
    p1 = Journey(1)
    p1.admit("2025-04-01 10:00", "E1")
    ready(p1, "2025-04-03 09:00", "E1", "equipment")
    ready(p1, "2025-04-05 09:00", "E1", "home_care_package")
    p1.discharge("2025-04-10 11:00", "E1")
    # P2: ready and discharged the same day at RYR16: 0 days, reason unknown.
    p2 = Journey(2)
    p2.admit("2025-05-01 10:00", "E2", hospital="RYR16")
    ready(p2, "2025-05-02 08:00", "E2", None, hospital="RYR16")
    p2.discharge("2025-05-02 17:00", "E2", hospital="RYR16")
    # P3: ready 20 June 23:30 UTC = 21 June 00:30 in London, discharged 23 June: 2 days.
    p3 = Journey(3)
    p3.admit("2025-06-15 10:00", "E3")
    ready(p3, "2025-06-20T23:30+00:00", "E3", "care_home_place")
    p3.discharge("2025-06-23 10:00", "E3", destination="care_home")
    # P4: ready 25 August, still in hospital on 31 August: still waiting.
    p4 = Journey(4)
    p4.admit("2025-08-20 10:00", "E4")
    ready(p4, "2025-08-25 10:00", "E4", "family")
    # P5: no DischargeReady: not a unit. P6: a decision for another encounter: ignored.
    p5 = Journey(5)
    p5.admit("2025-04-01 10:00", "E5")
    p5.discharge("2025-04-09 10:00", "E5")
    p6 = Journey(6)
    p6.admit("2025-04-01 10:00", "E6")
    ready(p6, "2025-04-02 10:00", "OTHER", "other")
    p6.discharge("2025-04-09 10:00", "E6")
    measured.record(p1, p2, p3, p4, p5, p6)

    report = measured.report(FIRST, LAST, by="organisation")
    everyone = group(report, "delayed_discharge")
    assert without_series(everyone) == {
        "group": "all",
        "discharges": 3,
        "delayed": 2,
        "delayed_days": 9,
        "mean_delay_days": 3.0,
        "median_delay_days": 2,
        "still_waiting": 1,
    }
    reasons = {
        r["label"]: (r["discharges"], r["delayed_days"]) for r in everyone["by_delay_reason"]
    }
    assert reasons == {
        "care_home_place": (1, 2),
        "family": (0, 0),
        "home_care_package": (1, 7),
        "unknown": (1, 0),
    }
    rxh = group(report, "delayed_discharge", "RXH01")
    assert (rxh["discharges"], rxh["delayed_days"], rxh["still_waiting"]) == (2, 9, 1)
    ryr = group(report, "delayed_discharge", "RYR16")
    assert (ryr["discharges"], ryr["delayed"], ryr["delayed_days"]) == (1, 0, 0)
    # Evaluators see small numbers suppressed, like every other measure.
    hidden = group(measured.report(FIRST, LAST, unsuppressed=False), "delayed_discharge")
    assert hidden["discharges"] is None and hidden["mean_delay_days"] is None
