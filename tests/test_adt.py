"""HL7 v2 ADT -> envelopes: pure mapping rules, the public samples, and UK-style
sequences imported through the real ledger (docs/adt.md)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consumers import adt_codes
from consumers.adt import ADT_NAMESPACE, Decoded, IdentityUpdate, Rejected, decode
from consumers.adt_ingest import append_messages
from consumers.hl7v2 import split_messages
from domain.ledger import Ledger
from domain.settings import Settings
from tests.adt_messages import FACILITIES, ODS, adt
from tests.envelopes import NHS_A, NHS_B

# Public HL7 v2 samples (MIT, see LICENSE-FHIR-Converter.txt), copied from shared/samples so
# the suite does not depend on a folder outside the repository.
SAMPLES = Path(__file__).resolve().parent / "samples" / "hl7v2"
assert sorted(SAMPLES.glob("*.hl7")), f"HL7 samples missing from {SAMPLES}"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "adt.md"
SETTINGS = Settings(adt_facilities=FACILITIES)


def envelope_of(message: str, settings: Settings = SETTINGS) -> dict[str, Any]:
    outcome = decode(message, settings)
    assert isinstance(outcome, Decoded), outcome
    return outcome.envelope


def rejection_of(message: str | bytes, settings: Settings = SETTINGS) -> dict[str, str]:
    outcome = decode(message, settings)
    assert isinstance(outcome, Rejected), outcome
    return {e.loc: e.msg for e in outcome.errors}


# -- one rule per trigger ---------------------------------------------------------------


def test_a01_is_an_admission() -> None:
    env = envelope_of(adt("A01", method="21", ward="WARD7"))
    assert env["type"] == "Admitted"
    assert env["nhs_number"] == NHS_A
    assert env["data"] == {
        "encounter_id": "V100",
        "hospital": ODS,
        "ward": "WARD7",
        "method": "emergency",
    }
    assert env["source"] == {"organisation": ODS, "system": "hl7v2:PAS", "setting": "acute"}
    assert "recorded_by" not in env
    assert env["occurred_at"] == "2026-03-02T10:15:00Z"  # GMT in March


def test_a02_is_a_transfer_between_locations() -> None:
    env = envelope_of(adt("A02", prior="WARD7^R2^B3", ward="ICU", room="", bed="B1"))
    assert env["type"] == "Transferred"
    assert env["data"] == {
        "encounter_id": "V100",
        "from_location": "WARD7/R2/B3",
        "to_location": "ICU/B1",
    }
    assert "PV1-6" in rejection_of(adt("A02", prior=""))


@pytest.mark.parametrize(
    ("code", "destination"),
    [
        ("19", "usual_residence"),
        ("54", "care_home"),
        ("51", "other_hospital"),
        ("79", "died"),
        ("29", "other"),
        ("", "other"),
        ('""', "other"),
    ],
)
def test_a03_is_a_discharge_with_its_destination(code: str, destination: str) -> None:
    env = envelope_of(adt("A03", destination=code))
    assert env["type"] == "Discharged"
    assert env["data"] == {"encounter_id": "V100", "destination": destination}


def test_a03_with_an_unknown_destination_code_is_rejected_listing_the_table() -> None:
    msg = rejection_of(adt("A03", destination="XX"))["PV1-36"]
    assert "'XX' is not in the table" in msg and "19, 29" in msg


def test_a04_is_an_acute_contact_marked_as_a_registration() -> None:
    env = envelope_of(adt("A04", attending="C123^JONES"))
    assert env["type"] == "ContactRecorded"
    assert env["data"] == {
        "setting": "acute",
        "mode": "face_to_face",
        "with": {"id": "C123", "role": "other", "organisation": ODS},
    }
    assert env["source"]["system"].startswith(adt_codes.ADT_SYSTEM_PREFIX)
    no_attending = envelope_of(adt("A04", ward="AE"))
    assert no_attending["data"]["with"]["id"] == "AE"  # the point of care


def test_a08_is_an_identity_update_not_an_event() -> None:
    message = adt("A08", pid_fields={5: "SMITH^JANE", 11: '""', 13: ""})
    outcome = decode(message, SETTINGS)
    assert isinstance(outcome, IdentityUpdate)
    assert outcome.nhs_number == NHS_A and outcome.organisation == ODS
    assert "PID-5" in outcome.sent and "PID-11" in outcome.deleted
    assert "PID-13" not in outcome.sent + outcome.deleted  # empty: no change
    assert "PID-11" not in outcome.sent


@pytest.mark.parametrize(
    ("trigger", "event_type"),
    [
        ("A11", "AdmissionCancelled"),
        ("A12", "TransferCancelled"),
        ("A13", "DischargeCancelled"),
    ],
)
def test_cancels(trigger: str, event_type: str) -> None:
    env = envelope_of(adt(trigger, encounter="V9"))
    assert env["type"] == event_type
    assert env["data"] == {"encounter_id": "V9"}


def test_a40_is_a_person_merge_naming_the_merged_nhs_number() -> None:
    env = envelope_of(adt("A40", nhs=NHS_A, merged_nhs=NHS_B))
    assert env["type"] == "PatientsMerged"
    assert env["nhs_number"] == NHS_A
    assert env["data"] == {"merged_nhs_number": NHS_B}
    assert "MRG-1" in rejection_of(adt("A40", nhs=NHS_A))


@pytest.mark.parametrize("trigger", ["A05", "A28", "A31"])
def test_other_triggers_are_unsupported(trigger: str) -> None:
    assert rejection_of(adt(trigger)) == {"MSH-9.2": f"unsupported trigger event {trigger}"}


def test_not_adt_or_not_hl7_is_rejected() -> None:
    assert rejection_of(adt("A01", message_type="ORU")) == {"MSH-9.1": "not an ADT message (ORU)"}
    assert "MSH" in rejection_of(b"PID|1||x\r")[""]
    assert "MSH" in rejection_of("")[""]


def test_latin_1_bytes_are_read() -> None:
    message = adt("A01", ward="STATION Ä").encode("latin-1")
    assert envelope_of(message)["data"]["ward"] == "STATION Ä"


def test_a08_without_an_nhs_number_is_rejected() -> None:
    assert "PID-3" in rejection_of(adt("A08", nhs=None))


def test_msh_trigger_wins_over_evn_and_says_so() -> None:
    outcome = decode(adt("A03", evn_trigger="A01"), SETTINGS)
    assert isinstance(outcome, Decoded)
    assert outcome.envelope["type"] == "Discharged"
    assert outcome.notes == ("EVN-1 says A01; MSH-9.2 (A03) wins",)


# -- field rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "method"),
    [
        ("11", "elective"),
        ("13", "elective"),
        ("21", "emergency"),
        ("2D", "emergency"),
        ("2B", "transfer"),
        ("31", "maternity"),
        ("81", "transfer"),
        ("E", "emergency"),
        ("C", "elective"),
        ("L", "maternity"),
    ],
)
def test_admission_method_table(code: str, method: str) -> None:
    assert envelope_of(adt("A01", method=code))["data"]["method"] == method


def test_missing_admission_method_or_encounter_is_rejected() -> None:
    assert "no code" in rejection_of(adt("A01", method=""))["PV1-4"]
    assert rejection_of(adt("A01", encounter=""))["PV1-19"] == "no encounter id (visit number)"


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2026", "2026-01-01T00:00:00Z"),  # year: start of it, GMT
        ("202607", "2026-06-30T23:00:00Z"),  # month, BST
        ("20260702", "2026-07-01T23:00:00Z"),  # day, BST
        ("2026070210", "2026-07-02T09:00:00Z"),  # hour
        ("202607021015", "2026-07-02T09:15:00Z"),  # minute
        ("20260702101530", "2026-07-02T09:15:30Z"),  # second
        ("20260702101530.25", "2026-07-02T09:15:30.250000Z"),  # fraction
        ("20260102101530.1234", "2026-01-02T10:15:30.123400Z"),  # GMT
        ("20260702101530+0200", "2026-07-02T08:15:30Z"),  # offset wins over the zone
        ("202601021015-0500", "2026-01-02T15:15:00Z"),
        ("202601021015-0030", "2026-01-02T10:45:00Z"),  # negative offset under an hour
        ("202610250130", "2026-10-25T00:30:00Z"),  # happens twice: first (BST)
        ("202603290130", "2026-03-29T01:30:00Z"),  # never happens: GMT offset
    ],
)
def test_timestamps_of_every_precision_in_the_configured_zone(stamp: str, utc: str) -> None:
    assert envelope_of(adt("A01", at=stamp))["occurred_at"] == utc


def test_offset_less_time_follows_the_configured_zone() -> None:
    new_york = Settings(adt_facilities=FACILITIES, timezone="America/New_York")
    assert envelope_of(adt("A01", at="202607021015"), new_york)["occurred_at"] == (
        "2026-07-02T14:15:00Z"
    )


@pytest.mark.parametrize(
    "stamp", ["2026070", "20261302", "20260702+02", "soon", "20260702101530+2500", "2026-07-02"]
)
def test_malformed_times_are_rejected_not_guessed(stamp: str) -> None:
    assert "EVN-6" in rejection_of(adt("A01", at=stamp))


def test_occurred_at_falls_back_from_evn6_to_evn2_to_msh7() -> None:
    assert (
        envelope_of(adt("A01", at="202603021100", evn2="202603021200", msh7="202603021300"))[
            "occurred_at"
        ]
        == "2026-03-02T11:00:00Z"
    )
    assert (
        envelope_of(adt("A01", at="", evn2="202603021200", msh7="202603021300"))["occurred_at"]
        == "2026-03-02T12:00:00Z"
    )
    assert (
        envelope_of(adt("A01", at="", evn2="", msh7="202603021300"))["occurred_at"]
        == "2026-03-02T13:00:00Z"
    )
    assert "EVN-6" in rejection_of(adt("A01", at="", evn2="", msh7=""))


@pytest.mark.parametrize(
    "pid3",
    [
        f"X1^^^RXH^MR~{NHS_A}^^^NHS^NH",  # NHS second, after a hospital number
        f"{NHS_A}^^^NHS^NH~X1^^^RXH^MR",  # NHS first
        f"{NHS_A}^^^^NH",  # type code only
        f"{NHS_A}^^^nhs",  # assigning authority only
        f"{NHS_A}^^^&2.16.840.1.113883.2.1.4.1&ISO^XX",  # the NHS number OID
        f"943 476 5919^^^NHS^NH~{NHS_A}^^^^NH",  # two repetitions, one number
    ],
)
def test_nhs_number_repetition_choice(pid3: str) -> None:
    assert envelope_of(adt("A01", pid3=pid3))["nhs_number"] == NHS_A


def test_nhs_number_problems_are_rejected_without_echoing_it() -> None:
    none = rejection_of(adt("A01", pid3="X1^^^RXH^MR~123^^^USSSA^SS"))["PID-3"]
    assert none == "no NHS number in PID-3 (found identifier types: MR, SS)"
    bad = rejection_of(adt("A01", pid3="9434765918^^^NHS^NH"))["PID-3"]
    assert "not valid" in bad and "9434765918" not in bad
    two = rejection_of(adt("A01", pid3=f"{NHS_A}^^^NHS^NH~{NHS_B}^^^NHS^NH"))["PID-3"]
    assert "2 different NHS numbers" in two


@pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
def test_any_segment_terminator(terminator: str) -> None:
    assert envelope_of(adt("A01", terminator=terminator)) == envelope_of(adt("A01"))


def test_event_id_is_uuid5_of_application_facility_and_control_id() -> None:
    env = envelope_of(adt("A01", control="C42"))
    assert env["event_id"] == str(uuid.uuid5(ADT_NAMESPACE, "PAS|RXH|C42"))
    assert envelope_of(adt("A03", control="C42"))["event_id"] == env["event_id"]
    assert envelope_of(adt("A01", control="C43"))["event_id"] != env["event_id"]
    assert envelope_of(adt("A01", control="C42", facility="RYJ"))["event_id"] != env["event_id"]


def test_unmapped_facility_is_rejected_by_name() -> None:
    msg = rejection_of(adt("A01", facility="ELSEWHERE"))["MSH-4"]
    assert "'ELSEWHERE' is not mapped" in msg and "CAREJOURNEY_ADT_FACILITIES" in msg


def test_files_split_on_msh_with_any_terminators() -> None:
    text = (
        adt("A01", control="1", terminator="\n") + "\n" + adt("A03", control="2", terminator="\r\n")
    )
    batch = f"FHS|^~\\&\rBHS|^~\\&\r{adt('A02', control='3', prior='W1')}BTS|3\rFTS|1\r"
    messages = split_messages(text) + split_messages(batch.encode())
    assert [envelope_of(m)["type"] for m in messages] == ["Admitted", "Discharged", "Transferred"]


def test_docs_hold_every_mapping_table_row() -> None:
    docs = DOCS.read_text()
    for table in (adt_codes.ADMISSION_METHODS, adt_codes.DISCHARGE_DESTINATIONS):
        for code, mapped in table.items():
            assert re.search(rf"\| `{code}` \| `{mapped}` \|", docs), (code, mapped)
    for trigger, event_type in adt_codes.TRIGGERS.items():
        assert f"| {trigger} |" in docs and (not event_type or f"`{event_type}`" in docs)


# -- the public samples (US identifiers) -------------------------------------------------


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.hl7")), ids=lambda p: p.name)
def test_public_samples_are_rejected_for_want_of_an_nhs_number(path: Path) -> None:
    mapped = Settings(adt_facilities={"GHHSFacility": "GHH01"})
    errors = rejection_of(path.read_bytes(), mapped)
    assert errors["PID-3"] == "no NHS number in PID-3 (found identifier types: MR, SS)"
    unmapped = rejection_of(path.read_bytes())
    assert "'GHHSFacility' is not mapped" in unmapped["MSH-4"]


def test_public_samples_through_the_ledger_record_nothing(ledger: Ledger) -> None:
    files = sorted(SAMPLES.glob("*.hl7"))
    assert len(files) == 7
    results = append_messages(ledger, [p.read_bytes() for p in files], SETTINGS)
    assert [r.status for r in results] == ["rejected"] * 7
    assert all("no NHS number in PID-3" in r.reason() for r in results)
    assert ledger.head_position() == 0


# -- UK-style sequences through the ledger ----------------------------------------------


def statuses(ledger: Ledger, *messages: str) -> list[str]:
    return [r.status for r in append_messages(ledger, list(messages), SETTINGS)]


def journey(ledger: Ledger, nhs: str = NHS_A) -> list[tuple[str, dict[str, Any]]]:
    patient = ledger.patient_id(nhs)
    assert patient is not None
    return [(e.type, e.data) for e in ledger.history(patient)]


def test_admit_transfer_discharge(ledger: Ledger) -> None:
    assert (
        statuses(
            ledger,
            adt("A01", control="1", at="202603021015"),
            adt("A02", control="2", at="202603031015", prior="WARD7^R2^B3", ward="ICU"),
            adt("A03", control="3", at="202603091015", ward="ICU", destination="19"),
        )
        == ["recorded"] * 3
    )
    assert [t for t, _ in journey(ledger)] == ["Admitted", "Transferred", "Discharged"]
    patient = ledger.patient_id(NHS_A)
    assert patient is not None and ledger.verify(patient) is None


def test_admit_then_cancel_admit(ledger: Ledger) -> None:
    assert (
        statuses(ledger, adt("A01", control="1"), adt("A11", control="2", at="202603021030"))
        == ["recorded"] * 2
    )
    assert journey(ledger)[1] == ("AdmissionCancelled", {"encounter_id": "V100"})


def test_discharge_cancel_discharge(ledger: Ledger) -> None:
    assert (
        statuses(
            ledger,
            adt("A01", control="1", at="202603011000"),
            adt("A03", control="2", at="202603051000", destination="19"),
            adt("A13", control="3", at="202603051100"),
            adt("A03", control="4", at="202603061000", destination="54"),
        )
        == ["recorded"] * 4
    )
    kinds = journey(ledger)
    assert [t for t, _ in kinds] == ["Admitted", "Discharged", "DischargeCancelled", "Discharged"]
    assert kinds[3][1]["destination"] == "care_home"


def test_readmission_within_30_days(ledger: Ledger) -> None:
    assert (
        statuses(
            ledger,
            adt("A01", control="1", at="202603011000", encounter="V1", method="21"),
            adt("A03", control="2", at="202603051000", encounter="V1", destination="19"),
            adt("A01", control="3", at="202603151000", encounter="V2", method="22"),
        )
        == ["recorded"] * 3
    )
    patient = ledger.patient_id(NHS_A)
    assert patient is not None
    events = ledger.history(patient)
    discharge, readmission = events[1], events[2]
    assert readmission.data["method"] == "emergency"
    assert readmission.data["encounter_id"] != discharge.data["encounter_id"]
    assert (readmission.occurred_at - discharge.occurred_at).days == 10


def test_out_of_order_delivery_keeps_both_clocks(ledger: Ledger) -> None:
    assert (
        statuses(
            ledger,
            adt("A03", control="2", at="202603051000"),  # the discharge arrives first
            adt("A01", control="1", at="202603011000"),
        )
        == ["recorded"] * 2
    )
    patient = ledger.patient_id(NHS_A)
    assert patient is not None
    events = ledger.history(patient)
    assert [e.type for e in events] == ["Discharged", "Admitted"]  # recorded order
    assert events[0].occurred_at > events[1].occurred_at
    assert events[0].recorded_at <= events[1].recorded_at


def test_resent_message_is_a_duplicate_and_reused_control_id_a_conflict(
    ledger: Ledger,
) -> None:
    first = append_messages(ledger, [adt("A01", control="77")], SETTINGS)[0]
    again = append_messages(ledger, [adt("A01", control="77", terminator="\n")], SETTINGS)[0]
    assert (first.status, again.status) == ("recorded", "duplicate")
    assert again.item.position == first.item.position
    other = append_messages(ledger, [adt("A01", control="77", ward="WARD9")], SETTINGS)[0]
    assert other.status == "conflict"
    assert "different content" in other.reason()
    assert len(journey(ledger)) == 1


def test_a08_is_kept_as_a_seen_update_without_identifiers(
    ledger: Ledger, database_url: str
) -> None:
    statuses(ledger, adt("A01", control="1"))
    update = adt("A08", control="2", pid_fields={5: "SMITH^JANE", 11: '""'})
    assert statuses(ledger, update) == ["recorded"]
    assert statuses(ledger, update) == ["duplicate"]
    assert statuses(ledger, adt("A08", control="2", pid_fields={5: "X"}, at="202603041000")) == [
        "conflict"
    ]
    assert [t for t, _ in journey(ledger)] == ["Admitted"]  # no journey event
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT patient_id, organisation, sent, deleted::text,"
            " row_to_json(u)::text AS whole"
            " FROM adt_identity_updates u"
        ).fetchall()
    assert len(rows) == 1
    patient, organisation, sent, deleted, whole = rows[0]
    assert patient == ledger.patient_id(NHS_A) and organisation == ODS
    assert "PID-5" in sent and deleted == "{PID-11}"
    assert NHS_A not in whole and "SMITH" not in whole


# -- the command line -------------------------------------------------------------------


def test_adt_import_reports_each_message_and_exits_1_on_refusals(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from domain.settings import get_settings

    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_ADT_FACILITIES", '{"RXH": "RXH01"}')
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        good = tmp_path / "feed.hl7"
        good.write_text(
            adt("A01", control="1", terminator="\n")
            + adt("A03", control="2", evn_trigger="A01", terminator="\r\n")
        )
        runner = CliRunner()
        first = runner.invoke(app, ["adt", "import", str(good)])
        assert first.exit_code == 0, first.output
        assert "feed.hl7 message 1: A01 recorded at position" in first.stdout
        assert "[note: EVN-1 says A01; MSH-9.2 (A03) wins]" in first.stdout
        mixed = tmp_path / "mixed.hl7"
        mixed.write_text(
            adt("A01", control="1")
            + adt("A05", control="3")
            + adt("A08", control="4")
            + adt("A01", control="1", ward="W9")
        )
        second = runner.invoke(app, ["adt", "import", str(mixed), str(SAMPLES / "ADT-A01-01.hl7")])
        assert second.exit_code == 1
        lines = second.stdout
        assert "mixed.hl7 message 1: A01 duplicate at position" in lines
        assert "mixed.hl7 message 2: A05 rejected: MSH-9.2: unsupported trigger event" in lines
        assert "mixed.hl7 message 3: A08 recorded (identity update noted" in lines
        assert "mixed.hl7 message 4: A01 conflict" in lines
        assert (
            "ADT-A01-01.hl7 message 1: A01 rejected:" in lines
            and "no NHS number in PID-3 (found identifier types: MR, SS)" in lines
        )
        assert "1 conflict, 1 duplicate, 1 recorded, 2 rejected" in lines
        stats = runner.invoke(app, ["consume", "--adt", "--stats"])  # the --adt feed is wired
        assert stats.exit_code == 0, stats.output
        assert "consumer adt: care.adt.hl7v2" in stats.stdout
    finally:
        get_settings.cache_clear()


# -- end to end through the real broker (consume --adt) ---------------------------------


@pytest.mark.slow  # a real broker
def test_consume_adt_through_the_broker_with_dead_letters(
    kafka_broker, make_topic, database_url: str
) -> None:
    from dataclasses import replace

    from consumers.adt_ingest import kafka_feed
    from consumers.loop import LoopOptions
    from tests.fixtures_kafka import produce, read_topic
    from tests.kafka_inputs import consumed, running_loop, totals, wait_for

    topic = make_topic(2)
    sample = (SAMPLES / "ADT-A01-01.hl7").read_bytes()
    values = [
        adt("A01", control="1", nhs=NHS_A).encode(),
        adt("A01", control="2", nhs=NHS_B, terminator="\n").encode(),
        adt("A01", control="1", nhs=NHS_A, terminator="\r\n").encode(),  # resent
        adt("A08", control="3", nhs=NHS_A, pid_fields={11: '""'}).encode(),
        adt("A40", control="4", nhs=NHS_B, merged_nhs=NHS_A, at="202603031015").encode(),
        adt("A03", control="5", nhs=NHS_A, at="202603041015").encode(),  # lands on B
        adt("A05", control="6").encode(),
        sample,
    ]
    where = produce(kafka_broker, topic, [(b"k", v) for v in values])
    ledger = Ledger(database_url, SETTINGS)
    feed = replace(kafka_feed(SETTINGS, [topic]), dead_letter_topic=f"{topic}.dlq")
    try:
        with running_loop(ledger, feed, kafka_broker, LoopOptions(group_id=None)):
            wait_for(
                lambda: consumed(ledger, topic) == len(values),
                120,
                "every ADT message to be committed",
            )
        with ledger.connection() as conn:
            counts = totals(conn, topic)
        assert counts == {
            "consumed": 8,
            "recorded": 4,
            "duplicates": 1,
            "conflicts": 0,
            "rejected": 2,
            "noted": 1,
            "dead_letters_pending": 0,
        }
        survivor = ledger.patient_id(NHS_A)
        assert survivor is not None and survivor == ledger.patient_id(NHS_B)
        assert [e.type for e in ledger.history(survivor)] == [
            "Admitted",
            "Admitted",
            "PatientsMerged",
            "Discharged",
        ]
    finally:
        ledger.close()
    letters = read_topic(kafka_broker, f"{topic}.dlq", 2)
    assert len(letters) == 2
    reasons = {}
    for record in letters:
        headers = {k: v.decode() for k, v in record.headers}
        source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
        assert record.value == where[source]  # the original bytes
        reasons[record.value] = headers["dlq.reason"]
    assert reasons[values[6]] == "MSH-9.2: unsupported trigger event A05"
    assert "no NHS number in PID-3 (found identifier types: MR, SS)" in reasons[sample]
