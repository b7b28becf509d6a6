"""Property: random journeys, delivered shuffled with duplicates and retractions (each
after its target), fold to exactly what a simple reference fold over the same events
sorted by occurred time says, for every projection.

The reference below is written independently of ``projections/``: one loop over the
facts for all read models at once, retractions decided by recursion, coordinator
intervals derived by recomputing the answer after every fact and cutting where it
changes. It states the rules of docs/projections.md a second time, in a second shape.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.journey import RecordedEvent
from projections import care_plans, coordinators, quality, referrals, timeline
from projections.fold import prepare
from tests.projection_events import Ledger, fact, retract

LONDON = ZoneInfo("Europe/London")
LATE = timedelta(days=7)
STAFF = ["N1", "N2", "N3"]
CANCEL_OF = {
    "AdmissionCancelled": "Admitted",
    "TransferCancelled": "Transferred",
    "DischargeCancelled": "Discharged",
}
CORRECTIONS = {"EventRetracted", "PatientsMerged", *CANCEL_OF}

# -- random journeys ---------------------------------------------------------------------


def pro(ident: str) -> dict[str, str]:
    return {"id": ident, "role": "community_nurse", "organisation": "RYX01", "setting": "community"}


def goal(g: str) -> dict[str, str]:
    return {"goal_id": g, "description": f"goal {g}"}


DUE = st.sampled_from(["2026-03-01", "2026-04-01", "2026-05-01"])
ENC = st.sampled_from(["E1", "E2"])
REF = st.sampled_from(["R1", "R2"])
PLAN = st.sampled_from(["P1", "P2"])
GOAL = st.sampled_from(["g1", "g2", "g3"])
DATA: dict[str, Any] = {
    "PatientRegistered": st.builds(
        lambda p, g: {"practice": p, **({"gp_id": g} if g else {})},
        st.sampled_from(["A81001", "A81002"]),
        st.sampled_from([None, "G1", "G2"]),
    ),
    "CoordinatorAssigned": st.builds(lambda s: {"coordinator": pro(s)}, st.sampled_from(STAFF)),
    "CoordinatorHandedOff": st.builds(
        lambda f, t: {"from_id": f, "to": pro(t)},
        st.sampled_from([*STAFF, "G1", "A81001"]),
        st.sampled_from(STAFF),
    ),
    "CoordinatorReleased": st.builds(lambda s: {"coordinator_id": s}, st.sampled_from(STAFF)),
    "JourneyClosed": st.just({"reason": "moved_away"}),
    "Admitted": st.builds(
        lambda e, m: {"encounter_id": e, "hospital": "RXH01", "method": m},
        ENC,
        st.sampled_from(["emergency", "elective"]),
    ),
    "Transferred": st.builds(
        lambda e, w: {"encounter_id": e, "from_location": "A", "to_location": w},
        ENC,
        st.sampled_from("BC"),
    ),
    "Discharged": st.builds(
        lambda e, d: {"encounter_id": e, "destination": d},
        ENC,
        st.sampled_from(["usual_residence", "died"]),
    ),
    **{c: st.builds(lambda e: {"encounter_id": e}, ENC) for c in CANCEL_OF},
    "ReferralMade": st.builds(
        lambda r: {
            "referral_id": r,
            "priority": "routine",
            "to": {"organisation": "RYX01", "service": "falls", "setting": "community"},
        },
        REF,
    ),
    "ReferralAccepted": st.builds(lambda r: {"referral_id": r}, REF),
    "ReferralDeclined": st.builds(lambda r: {"referral_id": r, "reason": "no"}, REF),
    "FirstContactMade": st.builds(lambda r: {"referral_id": r}, REF),
    "CarePlanAgreed": st.builds(
        lambda p, gs, d: {
            "plan_id": p,
            "goals": [goal(g) for g in sorted(set(gs))],
            "agreed_with": "patient",
            "review_due": d,
        },
        PLAN,
        st.lists(GOAL, min_size=1, max_size=2),
        DUE,
    ),
    "CarePlanRevised": st.builds(
        lambda p, how, g: {"plan_id": p, how: [goal(g) if how in ("added", "changed") else g]},
        PLAN,
        st.sampled_from(["added", "changed", "achieved", "dropped"]),
        GOAL,
    ),
    "CarePlanReviewed": st.builds(lambda p, d: {"plan_id": p, "next_review_due": d}, PLAN, DUE),
    "CarePlanClosed": st.builds(lambda p: {"plan_id": p}, PLAN),
    "ContactRecorded": st.just(
        {
            "setting": "home",
            "mode": "phone",
            "with": {"id": "N1", "role": "gp", "organisation": "A81001"},
        }
    ),
}
WHEN = st.integers(0, 24 * 12).map(lambda h: h - h % 6)  # six-hourly: ties are common
GAP = st.integers(0, 60).map(lambda h: h - h % 6)


@st.composite
def episode(draw: st.DrawFn) -> list[tuple[int, str, dict[str, Any]]]:
    """A few facts that belong together (a stay, a referral's pathway, a plan's life, a
    chain of coordinators) at increasing times, or one random fact."""
    t = draw(WHEN)
    out: list[tuple[int, str, dict[str, Any]]] = []

    def add(kind: str, data: dict[str, Any]) -> None:
        nonlocal t
        out.append((t, kind, data))
        t += draw(GAP)

    what = draw(st.sampled_from(["stay", "referral", "plan", "coordination", "noise"]))
    if what == "stay":
        enc = {"encounter_id": draw(ENC)}
        add("Admitted", {**enc, "hospital": "RXH01", "method": "emergency"})
        for kind in draw(
            st.lists(
                st.sampled_from(
                    ["Transferred", "TransferCancelled", "Discharged", "DischargeCancelled"]
                ),
                max_size=3,
            )
        ):
            add(kind, draw(DATA[kind]) | enc)
        add("Discharged", draw(DATA["Discharged"]) | enc)
    elif what == "referral":
        ref = {"referral_id": draw(REF)}
        add("ReferralMade", draw(DATA["ReferralMade"]) | ref)
        for kind in draw(
            st.lists(
                st.sampled_from(["ReferralAccepted", "ReferralDeclined", "FirstContactMade"]),
                max_size=2,
            )
        ):
            add(kind, draw(DATA[kind]) | ref)
    elif what == "plan":
        plan = {"plan_id": draw(PLAN)}
        add("CarePlanAgreed", draw(DATA["CarePlanAgreed"]) | plan)
        for kind in draw(
            st.lists(
                st.sampled_from(
                    ["CarePlanRevised", "CarePlanRevised", "CarePlanReviewed", "CarePlanClosed"]
                ),
                max_size=3,
            )
        ):
            add(kind, draw(DATA[kind]) | plan)
    elif what == "coordination":
        who = draw(st.sampled_from(STAFF))
        add("CoordinatorAssigned", {"coordinator": pro(who)})
        for _ in range(draw(st.integers(0, 2))):
            nxt = draw(st.sampled_from(STAFF))
            add("CoordinatorHandedOff", {"from_id": who, "to": pro(nxt)})
            who = nxt
        if draw(st.booleans()):
            add("CoordinatorReleased", {"coordinator_id": who})
    else:
        kind = draw(st.sampled_from(sorted(DATA)))
        add(kind, draw(DATA[kind]))
    return out


@st.composite
def deliveries(draw: st.DrawFn, tie_free: bool = False) -> list[RecordedEvent]:
    """A journey's facts, shuffled, with duplicates and retractions after their targets,
    through the in-memory ledger (positions and recorded times in delivery order)."""
    planned = [(draw(st.integers(0, 24)), "PatientRegistered", draw(DATA["PatientRegistered"]))]
    for _ in range(draw(st.integers(0, 5))):
        planned.extend(draw(episode()))
    # Seconds apart when asked: no two facts at the same instant.
    facts = [
        fact(kind, at + (i / 3600 if tie_free else 0), data)
        for i, (at, kind, data) in enumerate(planned)
    ]
    seq = draw(st.permutations(facts))
    for k in range(draw(st.integers(0, 4))):
        idx = draw(st.integers(0, len(seq) - 1))
        at = draw(WHEN) + ((len(facts) + k) / 3600 if tie_free else 0)
        seq.insert(draw(st.integers(idx + 1, len(seq))), retract(seq[idx], at))
    for _ in range(draw(st.integers(0, 3))):
        idx = draw(st.integers(0, len(seq) - 1))
        seq.insert(draw(st.integers(idx + 1, len(seq))), seq[idx])
    ledger = Ledger(gap_every=draw(st.sampled_from([0, 3])))
    ledger.deliver(*seq)
    return ledger.events


# -- the reference fold ------------------------------------------------------------------


def reference(events: list[RecordedEvent]) -> dict[str, Any]:
    key = lambda e: (e.occurred_at, e.position)  # noqa: E731
    retractions: dict[UUID, list[RecordedEvent]] = {}
    for e in events:
        if e.type == "EventRetracted":
            retractions.setdefault(UUID(e.data["retracted_event_id"]), []).append(e)

    @cache
    def retracted(event_id: UUID) -> bool:
        return any(not retracted(r.event_id) for r in retractions.get(event_id, []))

    ordered = sorted(events, key=key)
    standing = [e for e in ordered if not retracted(e.event_id)]
    cancelled: set[UUID] = set()
    findings: list[tuple[str, UUID]] = [
        ("retracted", e.event_id) for e in ordered if retracted(e.event_id)
    ]
    for c in [e for e in standing if e.type in CANCEL_OF]:
        targets = [
            e
            for e in standing
            if e.type == CANCEL_OF[c.type]
            and e.data["encounter_id"] == c.data["encounter_id"]
            and e.occurred_at <= c.occurred_at
            and e.event_id not in cancelled
        ]
        if targets:
            cancelled.add(max(targets, key=key).event_id)
        else:
            findings.append(("cancel_without_target", c.event_id))
    by_position = sorted(events, key=lambda e: e.position)
    for i, e in enumerate(by_position):
        if retracted(e.event_id) or e.type == "EventRetracted":
            continue
        earlier = [
            x.occurred_at
            for x in by_position[:i]
            if not retracted(x.event_id) and x.type != "EventRetracted"
        ]
        if earlier and max(earlier) > e.occurred_at:
            findings.append(
                (
                    "late_arrival" if max(earlier) - e.occurred_at > LATE else "out_of_order",
                    e.event_id,
                )
            )
    facts = [e for e in standing if e.event_id not in cancelled and e.type not in CORRECTIONS]
    status = {
        e.event_id: "retracted"
        if retracted(e.event_id)
        else "cancelled"
        if e.event_id in cancelled
        else "recorded"
        for e in ordered
    }
    out = {"timeline": [(e.event_id, status[e.event_id]) for e in ordered]}
    out.update(reference_facts(facts, findings))
    out["findings"] = Counter(findings)
    return out


def coordination(facts: list[RecordedEvent]) -> dict[str, Any]:
    """The coordinator answer after these facts (recomputed from scratch each time)."""
    s: dict[str, Any] = {
        "open": False,
        "ever": False,
        "named": None,
        "practice": None,
        "opener": None,
        "handoffs": 0,
        "unnamed_since": None,
        "findings": [],
    }
    for e in facts:
        d, t, kind = e.data, e.occurred_at, e.type
        current = (
            s["named"]["id"]
            if s["named"]
            else ((s["gp"] or s["practice"]) if s["practice"] else None)
        )
        if kind not in ("PatientRegistered", "JourneyClosed") and not s["open"]:
            s["findings"].append(("outside_journey", e.event_id))
        if kind == "PatientRegistered":
            changed = (s["practice"], s.get("gp")) != (d["practice"], d.get("gp_id"))
            s["practice"], s["gp"] = d["practice"], d.get("gp_id")
            if not s["open"]:
                s.update(
                    open=True,
                    ever=True,
                    opener=e,
                    opened_at=t,
                    unnamed_since=None if s["named"] else t,
                )
            elif changed and s["named"] is None:
                s["opener"] = e
        elif kind == "JourneyClosed":
            if not s["open"]:
                s["findings"].append(("outside_journey", e.event_id))
            s.update(open=False, named=None, unnamed_since=None)
        elif kind == "CoordinatorAssigned":
            if s["named"]:
                s["findings"].append(("assigned_while_coordinated", e.event_id))
            s.update(named=d["coordinator"], opener=e, unnamed_since=None)
        elif kind == "CoordinatorHandedOff":
            if d["from_id"] != current:
                s["findings"].append(("handoff_from_non_coordinator", e.event_id))
            s.update(named=d["to"], opener=e, unnamed_since=None)
            s["handoffs"] += 1
        elif kind == "CoordinatorReleased":
            if s["named"] and s["named"]["id"] == d["coordinator_id"]:
                s.update(named=None, opener=e)
                if s["open"] and s["unnamed_since"] is None:
                    s["unnamed_since"] = t
            else:
                s["findings"].append(("release_of_non_coordinator", e.event_id))
    if s["open"]:
        who = s["named"]["id"] if s["named"] else s["gp"] or s["practice"]
        s["answer"] = (who, s["named"] is not None, s["opener"].event_id)
    else:
        s["answer"] = None
    return s


def reference_facts(facts: list[RecordedEvent], findings: list) -> dict[str, Any]:
    intervals: list[list[Any]] = []
    before = None
    for i, e in enumerate(facts):
        after = coordination(facts[: i + 1])["answer"]
        if after != before:
            if before is not None:
                intervals[-1][3] = e.occurred_at
            if after is not None:
                intervals.append([after[0], after[1], e.occurred_at, None])
        before = after
    final = coordination(facts)
    findings.extend(final["findings"])
    spells: list[dict[str, Any]] = []
    inside: dict[str, dict[str, Any]] = {}
    refs: dict[str, dict[str, Any]] = {}
    plans: dict[str, dict[str, Any]] = {}
    for e in facts:
        d, t, kind = e.data, e.occurred_at, e.type
        if kind == "Admitted":
            if d["encounter_id"] in inside:
                findings.append(("admission_while_admitted", e.event_id))
            else:
                inside[d["encounter_id"]] = {
                    "enc": d["encounter_id"],
                    "in": t,
                    "out": None,
                    "moves": 0,
                    "dest": None,
                }
                spells.append(inside[d["encounter_id"]])
        elif kind in ("Transferred", "Discharged"):
            spell = inside.get(d["encounter_id"])
            if spell is None:
                findings.append(
                    (
                        f"{'discharge' if kind == 'Discharged' else 'transfer'}_without_admission",
                        e.event_id,
                    )
                )
            elif kind == "Transferred":
                spell["moves"] += 1
            else:
                spell.update(out=t, dest=d["destination"])
                del inside[d["encounter_id"]]
        elif kind == "ReferralMade":
            if d["referral_id"] in refs:
                findings.append(("repeated_referral", e.event_id))
            else:
                refs[d["referral_id"]] = {"made": t}
        elif kind in ("ReferralAccepted", "ReferralDeclined", "FirstContactMade"):
            if d["referral_id"] not in refs:
                findings.append(("unknown_referral", e.event_id))
            else:
                refs[d["referral_id"]].setdefault(kind, t)
        elif kind == "CarePlanAgreed":
            if d["plan_id"] in plans:
                findings.append(("plan_agreed_again", e.event_id))
                del plans[d["plan_id"]]
            plans[d["plan_id"]] = {
                "status": "active",
                "due": d["review_due"],
                "goals": {g["goal_id"]: "open" for g in d["goals"]},
            }
        elif kind.startswith("CarePlan"):
            plan = plans.get(d["plan_id"])
            if plan is None or plan["status"] != "active":
                findings.append(("unknown_plan", e.event_id))
            elif kind == "CarePlanReviewed":
                plan["due"] = d["next_review_due"]
            elif kind == "CarePlanClosed":
                plan["status"] = "closed"
            else:
                for how in ("added", "changed", "achieved", "dropped"):
                    for g in d.get(how, []):
                        gid = g["goal_id"] if isinstance(g, dict) else g
                        if how == "added":
                            plan["goals"][gid] = "open"
                        elif gid not in plan["goals"]:
                            findings.append(("unknown_goal", e.event_id))
                        elif how != "changed":
                            plan["goals"][gid] = how
    day = lambda t: t.astimezone(LONDON).date()  # noqa: E731
    return {
        "intervals": [tuple(i) for i in intervals],
        "status": (
            final["answer"][0] if final["answer"] else None,
            final["handoffs"],
            final["unnamed_since"] if final["open"] else None,
        ),
        "spells": [(s["enc"], s["in"], s["out"], s["moves"], s["dest"]) for s in spells],
        "referrals": {
            r: (
                "first_contact"
                if "FirstContactMade" in v
                else "declined"
                if "ReferralDeclined" in v
                else "accepted"
                if "ReferralAccepted" in v
                else "open",
                (day(v["FirstContactMade"]) - day(v["made"])).days
                if "FirstContactMade" in v
                else None,
            )
            for r, v in refs.items()
        },
        "plans": {
            p: (v["status"], date.fromisoformat(v["due"]), v["goals"]) for p, v in plans.items()
        },
    }


def projected(events: list[RecordedEvent]) -> dict[str, Any]:
    person = prepare(events)
    coord = coordinators.fold(person)
    line = timeline.fold(person)
    return {
        "timeline": [(e.event_id, e.status) for e in line.entries],
        "intervals": [
            (i.coordinator_id, i.named, i.valid_from, i.valid_to) for i in coord.intervals
        ],
        "status": (coord.status.coordinator_id, coord.status.handoffs, coord.status.unnamed_since),
        "spells": [
            (s.encounter_id, s.admitted_at, s.discharged_at, len(s.transfers), s.destination)
            for s in line.spells
        ],
        "referrals": {
            r.referral_id: (r.status, r.wait_days) for r in referrals.fold(person).referrals
        },
        "plans": {
            p.plan_id: (p.status, p.review_due, {g["goal_id"]: g["status"] for g in p.goals})
            for p in care_plans.fold(person).plans
        },
        "findings": Counter((f.kind, f.event_id) for f in quality.fold(person)),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_every_projection_equals_the_reference_fold(events: list[RecordedEvent]) -> None:
    assert projected(events) == reference(events)


@settings(max_examples=60, deadline=None)
@given(deliveries(tie_free=True), st.randoms(use_true_random=False))
def test_delivery_order_changes_nothing_but_arrival_findings(
    events: list[RecordedEvent], rng: Any
) -> None:
    """The same recorded facts with positions in another order (still retractions after
    their targets) give the same rows, but for the arrival findings, which are about
    delivery. (No ties here: a same-instant tie is broken by position on purpose.)"""
    shuffled = list(events)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda e: _depth(e, events))  # targets before their retractions
    relaid = Ledger()
    relaid.deliver(
        *[
            {
                "event_id": e.event_id,
                "type": e.type,
                "occurred_at": e.occurred_at,
                "patient_id": e.patient_id,
                "data": e.data,
                "setting": e.source["setting"],
            }
            for e in shuffled
        ]
    )
    a, b = projected(events), projected(relaid.events)
    for name in ("timeline", "intervals", "status", "spells", "referrals", "plans"):
        assert a[name] == b[name]


def _depth(event: RecordedEvent, events: list[RecordedEvent]) -> int:
    by_id = {e.event_id: e for e in events}
    depth = 0
    while event.type == "EventRetracted":
        target = by_id.get(UUID(event.data["retracted_event_id"]))
        if target is None:
            break
        event, depth = target, depth + 1
    return depth
