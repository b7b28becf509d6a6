"""Hospital feeds as hospitals send them (issue 12, section 2): hand-made messages in the
style of UK Epic / Cerner feeds — empty or local-text PV1-4, free-text PV1-36, PV1-2
classes such as ``DAY CASE``, NHS numbers typed ``HN``, MRN-only PID-3, reused MSH-10,
repeated A01 corrections, A06/A07 and MRN-only A40 — through the real ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from consumers import code_maps
from consumers.adt import Decoded, decode
from consumers.adt_ingest import append_messages
from domain.ledger import Ledger
from domain.settings import Settings
from projections import fold, quality, timeline
from tests.adt_messages import FACILITIES, ODS, adt
from tests.envelopes import NHS_A, NHS_B, envelope

SETTINGS = Settings(adt_facilities=FACILITIES)
MRN = "RXH^MR"  # Epic UK style: <MRN>^^^RXH^MR


def epic(trigger: str, *, mrn: str = "4012345", nhs: str | None = NHS_A, **kwargs: Any) -> str:
    """An Epic-style UK message: PID-3 with the trust's MRN and (maybe) the NHS number
    typed ``HN``; the rest as ``tests.adt_messages.adt``."""
    pid3 = f"{mrn}^^^RXH^MR" + (f"~{nhs}^^^NHS^HN" if nhs else "")
    return adt(trigger, pid3=pid3, **kwargs)


def decoded(message: str, settings: Settings = SETTINGS) -> Decoded:
    outcome = decode(message, settings)
    assert isinstance(outcome, Decoded), outcome
    return outcome


def person(ledger: Ledger, nhs: str | None = None, mrn: str | None = None) -> UUID:
    found = ledger.patient_id(nhs, ("RXH", mrn) if mrn else None)
    assert found is not None
    return found


def folded(ledger: Ledger, patient: UUID) -> fold.PersonEvents:
    return fold.prepare(ledger.history(patient), patient)


# -- descriptive fields never refuse a fact ---------------------------------------------


def test_empty_and_local_text_admission_method_is_recorded_as_unknown() -> None:
    empty = decoded(epic("A01", method=""))
    assert empty.envelope["data"]["method"] == "unknown"
    assert "method_as_sent" not in empty.envelope["data"]
    assert any("PV1-4: method empty is not coded" in n for n in empty.notes)
    local = decoded(epic("A01", method="Matern Ante"))
    assert local.envelope["data"]["method"] == "unknown"
    assert local.envelope["data"]["method_as_sent"] == {"code": "Matern Ante"}
    assert any("'Matern Ante' is not coded" in n for n in local.notes)
    # CWE with a local code and its text: both kept
    cwe = decoded(epic("A01", method="MA^Maternity Antenatal^L"))
    assert cwe.envelope["data"]["method_as_sent"] == {"code": "MA", "text": "Maternity Antenatal"}


def test_free_text_discharge_destination_and_day_case_class() -> None:
    env = decoded(
        epic("A03", destination="Discharged home with package", pv1_fields={2: "DAY CASE"})
    ).envelope
    assert env["data"]["destination"] == "unknown"
    assert env["data"]["destination_as_sent"] == {"code": "Discharged home with package"}
    assert env["data"]["patient_class"] == "day_case"
    assert env["data"]["patient_class_as_sent"] == {"code": "DAY CASE"}
    odd = decoded(epic("A01", pv1_fields={2: "Regular Attender"})).envelope
    assert odd["data"]["patient_class"] == "unknown"


def test_per_facility_code_maps_translate_local_codes(tmp_path: Path) -> None:
    maps = tmp_path / "maps.yaml"
    maps.write_text(
        "RXH:\n"
        "  admission_method: {'Matern Ante': maternity}\n"
        "  discharge_destination: {'home': usual_residence}\n"
        "'*':\n"
        "  patient_class: {'Regular Attender': day_case}\n"
    )
    mapped = Settings(adt_facilities=FACILITIES, adt_code_maps=maps)
    a01 = decoded(epic("A01", method="Matern Ante", pv1_fields={2: "Regular Attender"}), mapped)
    assert a01.envelope["data"]["method"] == "maternity"
    assert a01.envelope["data"]["method_as_sent"] == {"code": "Matern Ante"}
    assert a01.envelope["data"]["patient_class"] == "day_case"
    assert a01.notes == ()
    # text (component 2) matches too, ignoring case; another facility's map does not apply
    a03 = decoded(epic("A03", destination="H^HOME"), mapped)
    assert a03.envelope["data"]["destination"] == "usual_residence"
    other = decoded(epic("A01", method="Matern Ante", facility="RYJ"), mapped)
    assert other.envelope["data"]["method"] == "unknown"
    # JSON works as well
    as_json = tmp_path / "maps.json"
    as_json.write_text('{"RXH": {"admission_method": {"ELEC": "elective"}}}')
    json_mapped = Settings(adt_facilities=FACILITIES, adt_code_maps=as_json)
    assert decoded(epic("A01", method="ELEC"), json_mapped).envelope["data"]["method"] == (
        "elective"
    )


def test_a_bad_code_map_is_refused_naming_the_entry() -> None:
    with pytest.raises(code_maps.CodeMapError, match=r"RXH.admission_method: 'X' -> 'urgent'"):
        code_maps.parse("RXH:\n  admission_method: {X: urgent}\n")
    with pytest.raises(code_maps.CodeMapError, match="unknown field 'ward'"):
        code_maps.parse('{"RXH": {"ward": {}}}')


def test_nhs_number_typed_hn_or_with_an_mrn_names_the_person() -> None:
    env = decoded(epic("A01")).envelope
    assert env["nhs_number"] == NHS_A
    assert env["local_id"] == {"authority": "RXH", "value": "4012345"}
    # an invalid NHS number beside an MRN: recorded by the MRN, with a note, no echo
    bad = decoded(epic("A01", nhs="9434765918"))
    assert "nhs_number" not in bad.envelope and bad.envelope["local_id"]["value"] == "4012345"
    assert any("not valid" in n and "9434765918" not in n for n in bad.notes)


def test_refusals_are_only_for_messages_without_a_meaningful_fact() -> None:
    def reasons(message: str) -> str:
        outcome = decode(message, SETTINGS)
        assert not isinstance(outcome, Decoded)
        return "; ".join(f"{e.loc}: {e.msg}" for e in outcome.errors)

    assert "no patient identifier" in reasons(adt("A01", pid3="123456789^^^USSSA^SS"))
    assert "no event time" in reasons(epic("A01", at="", evn2="", msh7=""))
    assert "not mapped to an ODS code" in reasons(epic("A01", facility="NOWHERE"))
    assert "not an HL7 v2 message" in reasons("garbage")
    assert "PV1-19: no encounter id" in reasons(epic("A03", encounter=""))


# -- through the ledger -----------------------------------------------------------------


def test_uncoded_fields_are_recorded_and_reported_as_findings(ledger: Ledger) -> None:
    results = append_messages(
        ledger,
        [
            epic("A01", control="1", method=""),
            epic("A03", control="2", at="20260305101500", destination="Home"),
        ],
        SETTINGS,
    )
    assert [r.status for r in results] == ["recorded", "recorded"]
    patient = person(ledger, NHS_A)
    rows = quality.fold(folded(ledger, patient))
    assert [(r.kind, r.event_type) for r in rows if r.kind == "uncoded_value"] == [
        ("uncoded_value", "Admitted"),
        ("uncoded_value", "Discharged"),
    ]
    assert "destination recorded as unknown: sent code 'Home'" in rows[-1].detail
    spells = timeline.fold(folded(ledger, patient)).spells
    assert [(s.method, s.destination) for s in spells] == [("unknown", "unknown")]


def test_reused_control_ids_are_new_facts_and_resends_duplicates(ledger: Ledger) -> None:
    # Cerner-style: one interface reuses control id 1 for the A01, the A02 and the A03.
    feed = [
        epic("A01", control="1"),
        epic("A02", control="1", at="20260303090000", prior="WARD7^R2^B3", ward="WARD9"),
        epic("A03", control="1", at="20260305101500", ward="WARD9"),
    ]
    assert [r.status for r in append_messages(ledger, feed, SETTINGS)] == ["recorded"] * 3
    resent = append_messages(
        ledger,
        [epic("A02", control="99", at="20260303090000", prior="WARD7^R2^B3", ward="WARD9")],
        SETTINGS,
    )[0]
    assert resent.status == "duplicate" and resent.item.position == 2
    assert "MSH-10 '99': the same as the message at position 2, recorded" in resent.collision()
    assert [e.type for e in ledger.history(person(ledger, NHS_A))] == [
        "Admitted",
        "Transferred",
        "Discharged",
    ]


def test_mrn_only_person_then_linked_by_a_message_with_both(ledger: Ledger) -> None:
    first = append_messages(ledger, [epic("A01", control="1", nhs=None)], SETTINGS)
    assert first[0].status == "recorded"
    by_mrn = person(ledger, mrn="4012345")
    assert ledger.patient_id(NHS_A) is None
    # NHS number traced: the A03 carries both, and links them
    append_messages(ledger, [epic("A03", control="2", at="20260305101500")], SETTINGS)
    assert person(ledger, NHS_A) == by_mrn
    assert [e.type for e in ledger.history(by_mrn)] == ["Admitted", "Discharged"]


def test_both_identifiers_already_two_people_records_a_merge(ledger: Ledger) -> None:
    ledger.append(envelope(nhs=NHS_A))  # the GP registered them by NHS number
    append_messages(ledger, [epic("A01", control="1", nhs=None)], SETTINGS)  # MRN only
    gp, hospital = person(ledger, NHS_A), person(ledger, mrn="4012345")
    assert gp != hospital
    results = append_messages(ledger, [epic("A03", control="2", at="20260305101500")], SETTINGS)
    assert results[0].status == "recorded"
    assert person(ledger, mrn="4012345") == gp
    history = ledger.history(gp)
    assert [e.type for e in history] == [  # ledger order: the merge just before the A03
        "PatientRegistered",
        "Admitted",
        "PatientsMerged",
        "Discharged",
    ]
    merge = next(e for e in history if e.type == "PatientsMerged")
    assert merge.data["merged_patient_id"] == str(hospital)
    assert merge.data["reason"].startswith("linked:")
    # resending changes nothing: a duplicate, and no second merge
    again = append_messages(ledger, [epic("A03", control="3", at="20260305101500")], SETTINGS)
    assert again[0].status == "duplicate"
    assert sum(e.type == "PatientsMerged" for e in ledger.history(gp)) == 1


def test_a_local_id_held_by_someone_with_another_nhs_number_is_refused(ledger: Ledger) -> None:
    append_messages(ledger, [epic("A01", control="1", nhs=NHS_B)], SETTINGS)
    results = append_messages(ledger, [epic("A03", control="2", at="20260305101500")], SETTINGS)
    assert results[0].status == "rejected"
    assert "local_id: the local identifier belongs to a person with another NHS number" in (
        results[0].reason()
    )
    assert ledger.patient_id(NHS_A) is None


def test_mrn_only_a40_merges_two_hospital_numbers(ledger: Ledger) -> None:
    append_messages(
        ledger,
        [
            epic("A01", control="1", nhs=None, mrn="111"),
            epic("A01", control="2", nhs=None, mrn="222", encounter="V200"),
        ],
        SETTINGS,
    )
    survivor, merged = person(ledger, mrn="111"), person(ledger, mrn="222")
    a40 = adt("A40", control="3", pid3="111^^^RXH^MR", mrg1="222^^^RXH^MR", at="20260303101500")
    result = append_messages(ledger, [a40], SETTINGS)[0]
    assert result.status == "recorded", result.reason()
    assert person(ledger, mrn="222") == survivor
    assert [e.type for e in ledger.history(survivor)] == ["Admitted", "Admitted", "PatientsMerged"]
    assert merged in {
        UUID(e.data["merged_patient_id"])
        for e in ledger.history(survivor)
        if e.type == "PatientsMerged"
    }


def test_the_log_holds_no_identifier_and_erase_removes_every_one(
    ledger: Ledger, database_url: str
) -> None:
    append_messages(ledger, [epic("A01", control="1", mrn="MRN777")], SETTINGS)
    patient = person(ledger, NHS_A)
    with psycopg.connect(database_url) as conn:
        for table in ("journeys_events", "ledger_events"):
            text = conn.execute(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t")
            whole = text.fetchone()[0]
            assert NHS_A not in whole and "MRN777" not in whole
            assert NHS_A.encode().hex() not in whole and b"MRN777".hex() not in whole
    assert ledger.erase(None, ("RXH", "MRN777")) == patient
    assert ledger.patient_id(NHS_A) is None and ledger.patient_id(None, ("RXH", "MRN777")) is None
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM local_identifiers").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM identity_register").fetchone()[0] == 0


# -- corrections and triggers -----------------------------------------------------------


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_a_second_a01_corrects_the_ward_whatever_the_arrival_order(
    ledger: Ledger, order: str
) -> None:
    original = epic("A01", control="1", ward="WARD7", msh7="20260302101600")
    correction = epic("A01", control="2", ward="WARD9", msh7="20260302113000")
    feed = [original, correction] if order == "in order" else [correction, original]
    assert [r.status for r in append_messages(ledger, feed, SETTINGS)] == ["recorded"] * 2
    person_events = folded(ledger, person(ledger, NHS_A))
    spells = timeline.fold(person_events).spells
    assert len(spells) == 1 and spells[0].ward == "WARD9"
    statuses = sorted(e.status for e in person_events.entries)
    assert statuses == ["corrected", "recorded"]
    assert any(f.kind == "corrected" for f in person_events.findings)


def test_a06_and_a07_change_between_outpatient_and_inpatient(ledger: Ledger) -> None:
    a06 = decoded(epic("A06", control="1", pv1_fields={2: ""})).envelope
    assert a06["type"] == "Admitted" and a06["data"]["patient_class"] == "inpatient"
    a07 = decoded(epic("A07", control="2", pv1_fields={2: ""}, at="20260304101500")).envelope
    assert a07["type"] == "Discharged" and a07["data"]["patient_class"] == "outpatient"
    results = append_messages(
        ledger,
        [epic("A06", control="1"), epic("A07", control="2", at="20260304101500")],
        SETTINGS,
    )
    assert [r.status for r in results] == ["recorded", "recorded"]
    spells = timeline.fold(folded(ledger, person(ledger, NHS_A))).spells
    assert len(spells) == 1 and spells[0].status == "closed"


def test_a03_location_is_the_discharge_location() -> None:
    env = decoded(epic("A03", ward="DISCH LOUNGE", room="", bed="")).envelope
    assert env["data"]["location"] == "DISCH LOUNGE"
    assert env["source"]["organisation"] == ODS


def test_erase_by_local_id_on_the_command_line(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from domain.settings import get_settings

    append_messages(ledger, [epic("A01", control="1", nhs=None, mrn="MRN-55501")], SETTINGS)
    patient = person(ledger, mrn="MRN-55501")
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["erase"]).exit_code != 0  # neither identifier
        done = runner.invoke(app, ["erase", "--local", "RXH:MRN-55501"])
        assert done.exit_code == 0, done.output
        assert str(patient) in done.stdout and "MRN-55501" not in done.stdout
        assert ledger.patient_id(None, ("RXH", "MRN-55501")) is None
        again = runner.invoke(app, ["erase", "--local", "RXH:MRN-55501"])
        assert again.exit_code == 1 and "MRN-55501" not in again.output
    finally:
        get_settings.cache_clear()
