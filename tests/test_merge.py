"""Person merges (HL7 A40) in the ledger: resolution, history, retraction, erasure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from consumers.adt_ingest import append_messages
from domain.ledger import Ledger
from domain.settings import Settings
from tests.adt_messages import FACILITIES, adt
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later, retraction

NHS_D = "9990000018"


def merge(survivor: str, merged: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("organisation", "RXH01")
    kwargs.setdefault("setting", "acute")
    return envelope("PatientsMerged", nhs=survivor, data={"merged_nhs_number": merged}, **kwargs)


def pid(ledger: Ledger, nhs: str) -> UUID:
    found = ledger.patient_id(nhs)
    assert found is not None
    return found


def types(ledger: Ledger, patient: UUID, **kwargs: Any) -> list[str]:
    return [e.type for e in ledger.history(patient, **kwargs)]


def standing(database_url: str) -> list[tuple[UUID, UUID]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT merged_patient_id, survivor_patient_id FROM person_merges"
            " WHERE standing ORDER BY 1"
        ).fetchall()


def test_merge_is_stored_by_patient_id_and_redirects_both_numbers(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append_batch([envelope(nhs=NHS_A), envelope("CaseIdentified", nhs=NHS_B)])
    a, b = pid(ledger, NHS_A), pid(ledger, NHS_B)
    item = ledger.append(merge(NHS_B, NHS_A, at=later(1)))
    assert item.status == "recorded"
    stored = ledger.history(b)[-1]
    assert stored.type == "PatientsMerged" and stored.patient_id == b
    assert stored.data == {"merged_patient_id": str(a)}  # the shape folds code against
    assert pid(ledger, NHS_A) == pid(ledger, NHS_B) == b
    assert standing(database_url) == [(a, b)]
    # new events by either number land on the survivor
    ledger.append_batch(
        [
            envelope("ContactRecorded", nhs=NHS_A, at=later(2)),
            envelope("ContactRecorded", nhs=NHS_B, at=later(3)),
        ]
    )
    assert {e.patient_id for e in ledger.history(b) if e.type == "ContactRecorded"} == {b}
    # the survivor's history includes the merged person's events, in ledger order
    assert types(ledger, b) == [
        "PatientRegistered",
        "CaseIdentified",
        "PatientsMerged",
        "ContactRecorded",
        "ContactRecorded",
    ]
    assert ledger.verify(a) is None and ledger.verify(b) is None  # hashes the stored form


def test_resent_merge_is_a_duplicate_and_the_log_holds_no_nhs_number(
    ledger: Ledger, database_url: str
) -> None:
    env = merge(NHS_B, NHS_A)
    first = ledger.append(env)
    again = ledger.append(dict(env))
    assert (first.status, again.status) == ("recorded", "duplicate")
    assert again.position == first.position
    with psycopg.connect(database_url) as conn:
        state = conn.execute("SELECT encode(state, 'escape') FROM journeys_events").fetchall()
    assert state and all(NHS_A not in row[0] and NHS_B not in row[0] for row in state)


def test_publisher_may_not_name_a_patient_id(ledger: Ledger) -> None:
    env = envelope("PatientsMerged", data={"merged_patient_id": str(UUID(int=1))})
    item = ledger.append(env)
    assert item.status == "rejected"
    assert item.errors[0].loc == "data.merged_patient_id"


def test_self_merge_and_repeated_merges_are_rejected(ledger: Ledger) -> None:
    assert "themself" in ledger.append(merge(NHS_A, NHS_A)).reason()
    assert ledger.append(merge(NHS_B, NHS_A)).status == "recorded"
    again = ledger.append(merge(NHS_B, NHS_A, at=later(1)))  # another message, same merge
    assert "already merged into this person" in again.reason()
    elsewhere = ledger.append(merge(NHS_C, NHS_A, at=later(2)))
    assert "already merged into another person" in elsewhere.reason()
    backwards = ledger.append(merge(NHS_A, NHS_B, at=later(3)))  # A resolves to B
    assert backwards.status == "rejected"


def test_chains_are_transitive_and_the_named_survivor_is_resolved(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append_batch([envelope(nhs=n) for n in (NHS_A, NHS_B, NHS_C, NHS_D)])
    a, b, c, d = (pid(ledger, n) for n in (NHS_A, NHS_B, NHS_C, NHS_D))
    assert ledger.append(merge(NHS_B, NHS_A, at=later(1))).status == "recorded"  # A -> B
    assert ledger.append(merge(NHS_C, NHS_B, at=later(2))).status == "recorded"  # B -> C
    assert {pid(ledger, n) for n in (NHS_A, NHS_B, NHS_C)} == {c}
    assert {e.patient_id for e in ledger.history(c)} == {a, b, c}
    # "D into A" after A -> B -> C: the survivor A resolves to C, so it lands on C
    item = ledger.append(merge(NHS_A, NHS_D, at=later(3)))
    assert item.status == "recorded"
    assert ledger.event_status(UUID(str(item.event_id)))["patient_id"] == c
    assert pid(ledger, NHS_D) == c
    assert sorted(standing(database_url)) == sorted([(a, b), (b, c), (d, c)])


def test_merge_early_in_a_batch_redirects_later_items(ledger: Ledger) -> None:
    result = ledger.append_batch(
        [
            envelope(nhs=NHS_B),
            merge(NHS_B, NHS_A, at=later(1)),
            envelope("CaseIdentified", nhs=NHS_A, at=later(2)),
        ]
    )
    assert [i.status for i in result.items] == ["recorded"] * 3
    b = pid(ledger, NHS_B)
    assert types(ledger, b) == ["PatientRegistered", "PatientsMerged", "CaseIdentified"]


def test_retracting_the_merge_undoes_it_and_retracting_that_restores_it(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append_batch([envelope(nhs=NHS_A), envelope(nhs=NHS_B)])
    a, b = pid(ledger, NHS_A), pid(ledger, NHS_B)
    merged = merge(NHS_B, NHS_A, at=later(1))
    ledger.append(merged)
    undo = retraction(merged, nhs=NHS_A, at=later(2), organisation="RXH01")  # either number
    assert ledger.append(undo).status == "recorded"
    assert pid(ledger, NHS_A) == a and pid(ledger, NHS_B) == b
    assert standing(database_url) == []
    ledger.append(envelope("CaseIdentified", nhs=NHS_A, at=later(3)))
    assert types(ledger, a) == ["PatientRegistered", "CaseIdentified"]
    assert types(ledger, b) == ["PatientRegistered", "PatientsMerged", "EventRetracted"]
    redo = retraction(undo, nhs=NHS_B, at=later(4), organisation="RXH01")
    assert ledger.append(redo).status == "recorded"
    assert pid(ledger, NHS_A) == b
    assert standing(database_url) == [(a, b)]


def test_restoring_a_merge_is_refused_once_the_person_was_merged_elsewhere(
    ledger: Ledger,
) -> None:
    merged = merge(NHS_B, NHS_A)
    undo = retraction(merged, nhs=NHS_B, at=later(1), organisation="RXH01")
    assert [i.status for i in ledger.append_batch([merged, undo]).items] == ["recorded"] * 2
    assert ledger.append(merge(NHS_C, NHS_A, at=later(2))).status == "recorded"
    item = ledger.append(retraction(undo, nhs=NHS_B, at=later(3), organisation="RXH01"))
    assert item.status == "rejected"
    assert "merged into another person" in item.reason()
    assert pid(ledger, NHS_A) == pid(ledger, NHS_C)


def test_either_number_retracts_the_merged_persons_old_events(ledger: Ledger) -> None:
    old = envelope("CaseIdentified", nhs=NHS_A)
    ledger.append_batch([old, merge(NHS_B, NHS_A, at=later(1))])
    assert ledger.append(retraction(old, nhs=NHS_A, at=later(2))).status == "recorded"
    assert ledger.append(dict(old)).status == "duplicate"  # resent to its merged person


def test_history_known_at_follows_the_merges_the_ledger_knew(ledger: Ledger) -> None:
    ledger.append_batch([envelope(nhs=NHS_A), envelope(nhs=NHS_B)])
    before_merge = datetime.now(UTC)
    merged = merge(NHS_B, NHS_A, at=later(1))
    ledger.append(merged)
    while_merged = datetime.now(UTC)
    ledger.append(retraction(merged, nhs=NHS_B, at=later(2), organisation="RXH01"))
    b = pid(ledger, NHS_B)
    assert types(ledger, b, known_at=before_merge) == ["PatientRegistered"]
    assert types(ledger, b, known_at=while_merged) == [
        "PatientRegistered",
        "PatientRegistered",
        "PatientsMerged",
    ]
    assert types(ledger, b) == ["PatientRegistered", "PatientsMerged", "EventRetracted"]


def test_erasing_a_merged_person_erases_every_number_of_that_person(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append_batch([envelope(nhs=NHS_A), envelope(nhs=NHS_B)])
    a, b = pid(ledger, NHS_A), pid(ledger, NHS_B)
    ledger.append_batch([merge(NHS_B, NHS_A, at=later(1)), envelope(nhs=NHS_C)])
    assert ledger.erase(NHS_A) == b  # the number identifies the survivor
    assert ledger.patient_id(NHS_A) is None and ledger.patient_id(NHS_B) is None
    assert ledger.patient_id(NHS_C) is not None
    # history stays, unlinkable; a new event for either number opens a new person
    assert len(ledger.history(b)) == 3 and ledger.verify(b) is None
    ledger.append_batch(
        [
            envelope("CaseIdentified", nhs=NHS_A, at=later(2)),
            envelope("CaseIdentified", nhs=NHS_B, at=later(2)),
        ]
    )
    new_a, new_b = pid(ledger, NHS_A), pid(ledger, NHS_B)
    assert len({new_a, new_b, a, b}) == 4
    assert types(ledger, new_a) == ["CaseIdentified"]
    # the old merge still links the old, unlinkable ids only
    assert standing(database_url) == [(a, b)]
    # merging the new numbers is a fresh merge of the new people
    assert ledger.append(merge(NHS_B, NHS_A, at=later(3))).status == "recorded"
    assert pid(ledger, NHS_A) == new_b


def test_racing_conflicting_merges_record_one(ledger: Ledger) -> None:
    barrier = threading.Barrier(2)
    statuses: list[str] = []

    def write(survivor: str) -> None:
        barrier.wait()
        statuses.append(ledger.append(merge(survivor, NHS_A)).status)

    threads = [threading.Thread(target=write, args=(n,)) for n in (NHS_B, NHS_C)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["recorded", "rejected"]


def test_a40_through_the_adt_adapter(ledger: Ledger) -> None:
    settings = Settings(adt_facilities=FACILITIES)
    results = append_messages(
        ledger,
        [
            adt("A01", control="1", nhs=NHS_A, encounter="V1"),
            adt("A01", control="2", nhs=NHS_B, encounter="V2", at="202603031015"),
            adt("A40", control="3", nhs=NHS_B, merged_nhs=NHS_A, at="202603041015"),
            adt("A03", control="4", nhs=NHS_A, encounter="V1", at="202603051015"),
        ],
        settings,
    )
    assert [r.status for r in results] == ["recorded"] * 4
    b = pid(ledger, NHS_B)
    assert pid(ledger, NHS_A) == b
    events = ledger.history(b)
    assert [e.type for e in events] == ["Admitted", "Admitted", "PatientsMerged", "Discharged"]
    assert events[3].patient_id == b
