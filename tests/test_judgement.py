"""The append judgement on plain values: no database, no clock (domain/judgement.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from uuid import UUID

from domain.integrity import content_hash
from domain.judgement import check, judge
from domain.merges import MergeState
from tests.envelopes import NHS_A, NHS_B, T0, envelope, later, retraction

PEOPLE = {NHS_A: uuid.UUID(int=1), NHS_B: uuid.UUID(int=2)}
DAY = timedelta(days=1)


def _checked(*items):
    valid, rejected = check(items, None, T0, DAY)
    assert not rejected
    return valid


def test_check_refuses_each_bad_item_with_its_reason_and_keeps_the_others() -> None:
    good = envelope()
    future = envelope(at=later(48))
    elsewhere = envelope(organisation="RYX01")
    broken = {**envelope(), "schema_version": "1"}
    valid, rejected = check([good, future, elsewhere, broken], {"A81001"}, T0, DAY)
    assert [v.index for v in valid] == [0]
    assert valid[0].content_hash == content_hash(valid[0].content)
    assert rejected[1].errors[0].loc == "occurred_at"
    assert rejected[2].errors[0].loc == "source.organisation"
    assert rejected[3].status == "rejected" and rejected[3].event_id == broken["event_id"]


def test_repeat_in_a_batch_is_a_duplicate_and_other_content_a_conflict() -> None:
    first = envelope()
    same = dict(first)
    other = {**first, "occurred_at": later(1).isoformat()}
    decided = judge(_checked(first, same, other), PEOPLE, {}, MergeState())
    assert [(v.index, who) for v, who in decided.to_record] == [(0, PEOPLE[NHS_A])]
    assert decided.results[1].status == "duplicate"
    assert decided.results[2].status == "conflict"


def test_recorded_before_is_judged_against_its_stored_hash_and_person() -> None:
    env = envelope()
    [valid] = _checked(env)
    stored = {"patient_id": PEOPLE[NHS_A], "content_hash": valid.content_hash, "position": 7}
    event_id = UUID(env["event_id"])
    again = judge([valid], PEOPLE, {event_id: stored}, MergeState())
    assert again.to_record == [] and again.results[0].position == 7
    assert again.results[0].status == "duplicate"
    elsewhere = {**stored, "patient_id": PEOPLE[NHS_B]}
    moved = judge([valid], PEOPLE, {event_id: elsewhere}, MergeState())
    assert moved.results[0].status == "conflict"
    assert "another person" in moved.results[0].errors[0].msg


def test_a_retraction_needs_its_target_of_the_same_person_first() -> None:
    target = envelope()
    ahead = judge(_checked(retraction(target)), PEOPLE, {}, MergeState())
    assert "to retract (yet)" in ahead.results[0].errors[0].msg
    in_order = judge(_checked(target, retraction(target)), PEOPLE, {}, MergeState())
    assert [v.index for v, _ in in_order.to_record] == [0, 1]
    other = retraction(target, nhs=NHS_B)
    refused = judge(_checked(target, other), PEOPLE, {}, MergeState())
    assert "belongs to another person" in refused.results[1].errors[0].msg
