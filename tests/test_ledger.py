"""The ledger's rules (docs/architecture.md, "The rules") against a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import psycopg

from domain.contract import envelope_content, parse_envelope
from domain.contract import utc_text as ledger_text
from domain.journey import Journey, journey_event, state_tail, stored_events
from domain.judgement import check_batch
from domain.ledger import Ledger
from domain.settings import Settings
from domain.synthetic import generate_people
from tests.envelopes import NHS_A, NHS_B, envelope, later, retraction


def test_append_records_with_position_and_both_clocks(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    item = ledger.append(envelope())
    assert item.status == "recorded"
    assert item.position is not None and item.position > 0
    patient = ledger.patient_id(NHS_A)
    assert patient is not None
    [event] = ledger.history(patient)
    assert event.position == item.position
    assert event.type == "PatientRegistered"
    assert event.occurred_at == datetime.fromisoformat("2026-03-02T10:15:00+00:00")
    assert before <= event.recorded_at <= datetime.now(UTC)
    assert event.prev_hash is None and len(event.hash) == 64


def test_same_event_again_is_a_duplicate_reporting_the_original_position(
    ledger: Ledger, database_url: str, settings: Settings
) -> None:
    env = envelope()
    first = ledger.append(env)
    ledger.close()
    restarted = Ledger(database_url, settings)  # stored, not remembered in memory
    try:
        again = restarted.append(dict(env))
        assert again.status == "duplicate"
        assert again.position == first.position
        assert restarted.head_position() == first.position
    finally:
        restarted.close()


def test_same_instant_spelt_differently_is_the_same_content(ledger: Ledger) -> None:
    env = envelope(at="2026-03-02T10:15:00+00:00")
    ledger.append(env)
    assert ledger.append(dict(env, occurred_at="2026-03-02T10:15:00Z")).status == "duplicate"
    assert ledger.append(dict(env, occurred_at="2026-03-02T11:15:00+01:00")).status == "duplicate"


def test_same_id_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    env = envelope()
    first = ledger.append(env)
    changed = dict(env, data={"practice": "A81002"})
    item = ledger.append(changed)
    assert item.status == "conflict"
    assert item.position == first.position
    assert item.errors[0].loc == "event_id"
    assert "different content" in item.errors[0].msg


def test_same_id_for_another_person_is_a_conflict(ledger: Ledger) -> None:
    env = envelope()
    ledger.append(env)
    item = ledger.append(dict(env, nhs_number=NHS_B))
    assert item.status == "conflict"
    assert "another person" in item.errors[0].msg


def test_batch_keeps_good_items_and_reports_bad_ones_by_index(ledger: Ledger) -> None:
    good = envelope()
    repeated = dict(good)
    bad = envelope(
        "Admitted",
        at=later(1),
        data={"encounter_id": "E1", "hospital": "RXH01", "method": "teleport"},
    )
    naive = envelope("CaseIdentified", at="2026-03-02T10:15:00")
    result = ledger.append_batch([good, bad, repeated, naive, "{not json"])
    statuses = [i.status for i in result.items]
    assert statuses == ["recorded", "rejected", "duplicate", "rejected", "rejected"]
    assert result.items[2].position == result.items[0].position
    assert result.items[1].index == 1
    assert result.items[1].errors[0].loc == "data.method"
    assert result.items[3].errors[0].loc == "occurred_at"
    assert result.counts() == {"recorded": 1, "duplicate": 1, "conflict": 0, "rejected": 3}
    assert len(ledger.history(ledger.patient_id(NHS_A))) == 1


def test_out_of_order_facts_are_accepted(ledger: Ledger) -> None:
    discharge = envelope("Discharged", at=later(48), organisation="RXH01", setting="acute")
    admission = envelope("Admitted", at=later(1), organisation="RXH01", setting="acute")
    assert ledger.append(discharge).status == "recorded"
    assert ledger.append(admission).status == "recorded"
    types = [e.type for e in ledger.history(ledger.patient_id(NHS_A))]
    assert types == ["Discharged", "Admitted"]  # recorded order; timelines sort by occurred


def test_event_from_the_future_is_rejected(ledger: Ledger) -> None:
    future = datetime.now(UTC) + timedelta(days=2)
    item = ledger.append(envelope(at=future))
    assert item.status == "rejected"
    assert item.errors[0].loc == "occurred_at"
    assert "future" in item.errors[0].msg


def test_publisher_may_only_publish_for_its_organisations(ledger: Ledger) -> None:
    item = ledger.append_batch([envelope()], allowed_organisations={"B99999"}).items[0]
    assert item.status == "rejected"
    assert item.errors[0].loc == "source.organisation"


def test_retraction_needs_an_existing_event_of_the_same_person(ledger: Ledger) -> None:
    registered = envelope()
    other = envelope(nhs=NHS_B)
    ledger.append_batch([registered, other])
    unknown = retraction(envelope())
    item = ledger.append(unknown)
    assert item.status == "rejected"
    assert item.errors[0].loc == "data.retracted_event_id"
    assert "no recorded event" in item.errors[0].msg
    wrong_person = retraction(other, nhs=NHS_A)
    item = ledger.append(wrong_person)
    assert item.status == "rejected"
    assert "another person" in item.errors[0].msg
    assert ledger.append(retraction(registered)).status == "recorded"


def test_retraction_of_an_event_earlier_in_the_same_batch(ledger: Ledger) -> None:
    target = envelope("CaseIdentified")
    result = ledger.append_batch([target, retraction(target)])
    assert [i.status for i in result.items] == ["recorded", "recorded"]
    result = ledger.append_batch([retraction(envelope("CaseIdentified"))])
    assert result.items[0].status == "rejected"


def test_concurrent_writers_on_one_person_lose_nothing(ledger: Ledger) -> None:
    ledger.append(envelope())
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                batch = [
                    envelope("ContactRecorded", at=later(worker * 100 + i + j)) for j in range(3)
                ]
                assert all(r.status == "recorded" for r in ledger.append_batch(batch).items)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    patient = ledger.patient_id(NHS_A)
    events = ledger.history(patient)
    assert len(events) == 1 + 4 * 15 * 3
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    positions = [e.position for e in events]
    assert positions == sorted(positions)
    assert ledger.verify(patient) is None


def test_racing_writers_with_the_same_event_id_record_it_once(ledger: Ledger) -> None:
    env = envelope()
    barrier = threading.Barrier(4)
    statuses: list[str] = []

    def write() -> None:
        barrier.wait()
        statuses.append(ledger.append(dict(env)).status)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["duplicate", "duplicate", "duplicate", "recorded"]
    assert len(ledger.history(ledger.patient_id(NHS_A))) == 1


def test_journey_aggregate_replays_through_the_library(ledger: Ledger) -> None:
    events = [envelope(), envelope("CaseIdentified", at=later(1))]
    ledger.append_batch(events)
    journey = ledger.repository.get(ledger.patient_id(NHS_A))
    assert isinstance(journey, Journey)
    assert journey.version == 2
    assert journey.event_ids == [e["event_id"] for e in events]


def test_stored_state_round_trips_through_the_library_mapper(ledger: Ledger) -> None:
    """The ledger encodes states with orjson (``StateTranscoder``); the library's decoder
    must give back the same event: content, and the timestamp as a datetime."""
    ledger.append(envelope())
    ledger.append(envelope("CaseIdentified", at=later(1)))
    patient = ledger.patient_id(NHS_A)
    stored = ledger.recorder.select_events(patient)
    decoded = [ledger.mapper.to_domain_event(s) for s in stored]
    assert all(isinstance(e, Journey.Recorded) for e in decoded)
    assert all(isinstance(e.timestamp, datetime) and e.timestamp.tzinfo for e in decoded)
    recorded = ledger.history(patient)
    assert [e.content() for e in decoded] == [
        {
            "event_id": str(r.event_id),
            "type": r.type,
            "schema_version": r.schema_version,
            "occurred_at": ledger_text(r.occurred_at),
            "source": r.source,
            "recorded_by": r.recorded_by,
            "data": r.data,
        }
        for r in recorded
    ]
    assert ledger.verify(patient) is None


def test_stored_events_are_what_the_library_mapper_would_store(ledger: Ledger) -> None:
    """The ledger builds stored events from contents without the library's event
    objects; they must be the mapper's own, byte for byte, and decode back."""
    now = datetime.now(UTC)
    contents = [
        envelope_content(parse_envelope(e))
        for e in (envelope(), envelope("CaseIdentified", at=later(1)))
    ]
    patient = uuid4()
    triples = [(patient, i + 1, c) for i, c in enumerate(contents)]
    direct = stored_events(ledger.mapper, triples, now)
    library = [ledger.mapper.to_stored_event(journey_event(*t, now)) for t in triples]
    assert direct == library
    assert [ledger.mapper.to_domain_event(s).content() for s in direct] == contents
    # The states joined from tails made where the contents were checked: the same bytes.
    tails = [state_tail(c) for c in contents]
    assert all(t is not None for t in tails)
    assert stored_events(ledger.mapper, triples, now, tails) == library


def test_joined_states_are_the_mappers_for_every_synthetic_content(ledger: Ledger) -> None:
    """Every content of a synthetic cohort: the state joined from its tail (made in the
    check, ``judgement.Valid.state_tail``) is the library mapper's, byte for byte."""
    now = datetime.now(UTC)
    items = [e for person in generate_people(people=40, seed=5) for e in person]
    checked = check_batch(items, None, timedelta(days=3650))
    assert not checked.rejected
    valid = [v for v in checked.valid if v.type != "PatientsMerged"]  # stored as resolved
    triples = [(uuid4(), 1, v.content) for v in valid]
    tails = [v.state_tail for v in valid]
    assert all(t is not None for t in tails)
    library = [ledger.mapper.to_stored_event(journey_event(*t, now)) for t in triples]
    assert stored_events(ledger.mapper, triples, now, tails) == library


def _tables_containing(database_url: str, text: str) -> list[str]:
    """Every public table with a row whose text form holds ``text`` (plain, or as bytea hex)."""
    found = []
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        assert "journeys_events" in tables and "ledger_events" in tables
        for table in tables:
            hits = conn.execute(
                f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s OR t::text LIKE %s',
                (f"%{text}%", f"%{text.encode().hex()}%"),
            ).fetchone()[0]
            if hits:
                found.append(table)
    return found


def test_erasure_keeps_history_and_removes_the_number_everywhere(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append_batch([envelope(), envelope("CaseIdentified", at=later(1))])
    patient = ledger.patient_id(NHS_A)
    assert _tables_containing(database_url, NHS_A) == ["identity_register"]
    # The search does see inside stored event bytes: the practice code is there.
    assert "journeys_events" in _tables_containing(database_url, "A81001")
    assert ledger.erase(NHS_A) == patient
    assert ledger.patient_id(NHS_A) is None
    assert len(ledger.history(patient)) == 2  # history stays, unlinkable
    assert _tables_containing(database_url, NHS_A) == []
    # A later event for the same number opens a new, unlinked journey.
    ledger.append(envelope("ContactRecorded", at=later(5)))
    assert ledger.patient_id(NHS_A) not in (None, patient)


def test_a_large_batch_is_recorded_in_one_transaction(ledger: Ledger) -> None:
    """A few thousand events in one call: the write must neither hang (libpq pipeline
    mode deadlocked on such payloads over a Unix socket) nor split."""
    from domain.synthetic import generate_people

    events = [e for person in generate_people(people=250, seed=2) for e in person][:3000]
    result = ledger.append_batch(events)
    assert result.counts()["recorded"] == len(events)
    positions = [item.position for item in result.items]
    assert positions == sorted(positions)
    assert ledger.verify_all().ok


def test_processes_starting_together_all_open_the_ledger(
    database_url: str, settings: Settings
) -> None:
    """The API's workers open the ledger at the same moment; the library's table creation
    (CREATE OR REPLACE FUNCTION ...) raced ("tuple concurrently updated") before the
    recorder serialised it."""
    opened: list[Ledger] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        try:
            start.wait()
            opened.append(Ledger(database_url, settings))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len(opened) == 6
        assert opened[0].append(envelope()).status == "recorded"
        assert opened[-1].head_position() == 1
    finally:
        for app in opened:
            app.close()


def test_recorder_keeps_the_library_tracking_contract(ledger: Ledger) -> None:
    """The recorder replaces the library's insert; a process application's ``tracking``
    (one) is still written with the events, as are the ledger's ``trackings`` (many)."""
    from eventsourcing.persistence import Tracking

    ledger.recorder.insert_events([], tracking=Tracking("upstream", 5))
    ledger.recorder.insert_events([], trackings=[Tracking("kafka-a", 3), Tracking("kafka-b", 9)])
    assert ledger.recorder.max_tracking_id("upstream") == 5
    assert ledger.recorder.max_tracking_id("kafka-a") == 3
    assert ledger.recorder.max_tracking_id("kafka-b") == 9


def test_service_connections_run_without_jit(ledger: Ledger, database_url: str) -> None:
    """JIT compilation cost the append path ~150 ms a batch once tables were large; the
    ledger's pool and the projections' connections turn it off (the server default is on)."""
    from projections.log import connect

    with psycopg.connect(database_url) as plain:
        assert plain.execute("SHOW jit").fetchone() == ("on",)
    with ledger.connection() as conn:
        assert conn.execute("SHOW jit").fetchone()["jit"] == "off"
    with connect(database_url) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)
