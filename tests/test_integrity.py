"""Tamper evidence: a superuser's UPDATE, DELETE or swap is caught and named."""

from __future__ import annotations

import pytest

from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.tampering import superuser


@pytest.fixture
def journey(ledger: Ledger) -> list[dict]:
    events = [
        envelope(),
        envelope("CaseIdentified", at=later(1)),
        envelope("ContactRecorded", at=later(2)),
        envelope("ContactRecorded", at=later(3)),
    ]
    ledger.append_batch(events)
    ledger.append_batch([envelope(nhs=NHS_B)])
    return events


def _sql(url: str, statement: str, *params: object) -> None:
    with superuser(url) as conn:
        conn.execute(statement, params)


def test_untouched_ledger_verifies(ledger: Ledger, journey: list[dict]) -> None:
    assert ledger.verify(ledger.patient_id(NHS_A)) is None
    report = ledger.verify_all()
    assert report.ok
    assert (report.people, report.events) == (2, 5)


def test_update_of_stored_content_is_caught(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    patient = ledger.patient_id(NHS_A)
    _sql(
        database_url,
        "UPDATE journeys_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " 'home_visit', 'phone'), 'UTF8') WHERE originator_id = %s AND originator_version = 3",
        patient,
    )
    broken = ledger.verify(patient)
    assert broken is not None
    assert str(broken.event_id) == journey[2]["event_id"]
    assert "hash" in broken.reason
    report = ledger.verify_all()
    assert not report.ok and report.breaks[0].event_id == broken.event_id


def test_update_of_index_row_is_caught(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    _sql(
        database_url,
        "UPDATE ledger_events SET occurred_at = occurred_at - interval '1 day' WHERE event_id = %s",
        journey[1]["event_id"],
    )
    broken = ledger.verify(ledger.patient_id(NHS_A))
    assert broken is not None and str(broken.event_id) == journey[1]["event_id"]
    assert "occurred_at" in broken.reason


def test_delete_of_a_middle_event_is_caught(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    patient = ledger.patient_id(NHS_A)
    _sql(
        database_url,
        "DELETE FROM journeys_events WHERE originator_id = %s AND originator_version = 2",
        patient,
    )
    _sql(database_url, "DELETE FROM ledger_events WHERE event_id = %s", journey[1]["event_id"])
    broken = ledger.verify(patient)
    assert broken is not None
    assert str(broken.event_id) == journey[2]["event_id"]  # the first link that no longer fits
    assert "version" in broken.reason


def test_delete_of_the_stored_event_only_is_caught(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    patient = ledger.patient_id(NHS_A)
    _sql(
        database_url,
        "DELETE FROM journeys_events WHERE originator_id = %s AND originator_version = 2",
        patient,
    )
    broken = ledger.verify(patient)
    assert broken is not None and str(broken.event_id) == journey[1]["event_id"]
    assert "missing" in broken.reason


def test_delete_of_the_last_event_is_caught_by_the_head(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    patient = ledger.patient_id(NHS_A)
    _sql(
        database_url,
        "DELETE FROM journeys_events WHERE originator_id = %s AND originator_version = 4",
        patient,
    )
    _sql(database_url, "DELETE FROM ledger_events WHERE event_id = %s", journey[3]["event_id"])
    broken = ledger.verify(patient)
    assert broken is not None
    assert "head" in broken.reason


def test_swap_of_two_events_is_caught(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    patient = ledger.patient_id(NHS_A)
    _sql(
        database_url,
        "UPDATE journeys_events a SET state = b.state, topic = b.topic FROM journeys_events b"
        " WHERE a.originator_id = %s AND b.originator_id = a.originator_id"
        " AND ((a.originator_version = 2 AND b.originator_version = 3)"
        "   OR (a.originator_version = 3 AND b.originator_version = 2))",
        patient,
    )
    broken = ledger.verify(patient)
    assert broken is not None
    assert str(broken.event_id) == journey[1]["event_id"]


def test_saved_digest_still_matches_after_appends_but_not_after_tamper(
    ledger: Ledger, journey: list[dict], database_url: str
) -> None:
    position, digest = ledger.digest()
    ledger.append(envelope("ContactRecorded", at=later(9)))
    assert ledger.digest(position) == (position, digest)
    assert ledger.digest()[1] != digest
    # A forger who rewrites a person's chain must change that person's head hash ...
    _sql(
        database_url,
        "UPDATE ledger_events SET hash = repeat('0', 64) WHERE patient_id = %s",
        ledger.patient_id(NHS_B),
    )
    assert ledger.digest(position)[1] != digest
    # ... and one who alters an inner hash only is caught by the chain itself.
    _sql(
        database_url,
        "UPDATE ledger_events SET hash = repeat('1', 64) WHERE event_id = %s",
        journey[0]["event_id"],
    )
    assert ledger.verify(ledger.patient_id(NHS_A)) is not None
