"""The alert feed (projections/alert_feed.py): every visible change once, numbered
without gaps, deadlines announced when they pass, moves shown to both holders, alerts
that a late fact removes withdrawn."""

from __future__ import annotations

from datetime import timedelta

from domain.ledger import Ledger
from projections import alert_feed
from projections.runner import Runner
from tests.envelopes import envelope, later

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
OTHER = {**NURSE, "id": "S200"}


def project(ledger: Ledger, *envelopes: dict) -> None:
    result = ledger.append_batch(list(envelopes))
    assert result.counts()["rejected"] == 0, [i.as_dict() for i in result.items]
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    runner.run_once()


def changes(ledger: Ledger, after: int = 0, **who: object) -> list[tuple[str, str]]:
    with ledger.connection() as conn:
        return [
            (c["kind"], c["change"])
            for c in alert_feed.changes(conn, after, **who)  # type: ignore[arg-type]
        ]


def test_changes_are_numbered_once_and_moves_reach_both_holders(ledger: Ledger) -> None:
    project(
        ledger,
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope("Admitted", at=later(2)),
    )
    with ledger.connection() as conn:
        first = alert_feed.sync(conn)
        assert alert_feed.sync(conn) == 0  # idempotent
        assert alert_feed.head(conn) == first == 3
    assert sorted(changes(ledger)) == [
        ("admission", "opened"),
        ("handoff", "opened"),
        ("inform_person", "opened"),
    ]
    project(
        ledger,
        envelope("CoordinatorHandedOff", at=later(3), data={"from_id": "N100", "to": OTHER}),
    )
    with ledger.connection() as conn:
        alert_feed.sync(conn)
        seqs = [c["seq"] for c in alert_feed.changes(conn, 0)]
    assert seqs == list(range(1, len(seqs) + 1))  # no gaps, no repeats
    later_changes = changes(ledger, 3)
    assert ("admission", "moved") in later_changes
    assert ("handoff", "closed") in later_changes and ("inform_person", "closed") in later_changes
    for who in ("N100", "S200"):  # the holder it left and the new one both see the move
        mine = changes(ledger, 3, coordinator_id=who, organisations=["RYX01"])
        assert ("admission", "moved") in mine


def test_a_deadline_is_announced_when_it_passes(ledger: Ledger) -> None:
    made = envelope(
        "ReferralMade",
        at=later(1),
        data={
            "referral_id": "R1",
            "priority": "routine",
            "to": {"organisation": "RYX01", "service": "falls", "setting": "community"},
        },
    )
    project(ledger, envelope(), made)
    deadline = later(1) + timedelta(days=28)
    with ledger.connection() as conn:
        alert_feed.sync(conn, now=deadline - timedelta(seconds=1))
        before = [c["kind"] for c in alert_feed.changes(conn, 0)]
        alert_feed.sync(conn, now=deadline + timedelta(seconds=1))
        after = [c["kind"] for c in alert_feed.changes(conn, 0)]
    assert "referral_waiting" not in before
    assert after.count("referral_waiting") == 1


def test_an_alert_a_late_fact_removes_is_withdrawn(ledger: Ledger) -> None:
    project(
        ledger,
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope("Admitted", at=later(2)),
        envelope("Discharged", at=later(10)),
    )
    with ledger.connection() as conn:
        alert_feed.sync(conn)
    # A contact recorded late that occurred within 72 hours of the discharge.
    contact = envelope("ContactRecorded", at=later(20))
    project(ledger, contact)
    with ledger.connection() as conn:
        alert_feed.sync(conn)
    kinds = changes(ledger)
    assert ("follow_up_overdue", "opened") in kinds
    assert kinds.count(("follow_up_overdue", "withdrawn")) == kinds.count(
        ("follow_up_overdue", "opened")
    )
    assert ("discharge", "closed") in kinds
