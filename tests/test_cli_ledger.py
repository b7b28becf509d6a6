"""The ledger's command line: ingest, history, verify, erase, demo (real PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import ledger as cli_ledger
from cli.app import app
from domain.integrity import chain_hash, content_hash
from domain.settings import get_settings
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.tampering import superuser


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Invoke ``carejourney`` against the test database; returns the click result."""
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def ndjson(tmp_path: Path) -> Path:
    good = [envelope(), envelope("CaseIdentified", at=later(1)), envelope(nhs=NHS_B)]
    bad_nhs = envelope(nhs="9434765918")
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps(good[1]),
        json.dumps(bad_nhs),
        "",
        json.dumps(good[2]),
        json.dumps(good[0]),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_keeps_good_lines_and_names_bad_ones(run, ndjson: Path) -> None:
    result = run("ingest", str(ndjson))
    assert result.exit_code == 1
    assert "line 2: rejected: not valid JSON" in result.stderr
    assert "line 4: rejected: nhs_number" in result.stderr
    assert "3 recorded, 1 duplicate, 0 conflict, 2 rejected" in result.stdout
    history = run("history", NHS_A, "--json")
    assert history.exit_code == 0
    types = [json.loads(line)["type"] for line in history.stdout.splitlines()]
    assert types == ["PatientRegistered", "CaseIdentified"]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_ingest_streams_in_chunks_with_lines_and_indexes_of_the_whole_file(
    run, ndjson: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """Chunks of two lines (checked in a worker process, or here): every line keeps its
    number and its index among the file's envelopes, a duplicate of a line in an
    earlier chunk names that line's position, and a line that is not UTF-8 is rejected
    on its own."""
    monkeypatch.setattr(cli_ledger, "INGEST_CHUNK", 2)
    with ndjson.open("ab") as handle:
        handle.write(b'{"event_id": "\xff"}\r\n')
    result = run("ingest", "--json", "--workers", workers, str(ndjson))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    rows = [(r["line"], r["index"], r["status"]) for r in report["results"]]
    assert rows == [
        (1, 0, "recorded"),
        (2, 1, "rejected"),
        (3, 2, "recorded"),
        (4, 3, "rejected"),
        (6, 4, "recorded"),
        (7, 5, "duplicate"),
        (8, 6, "rejected"),
    ]
    first, dup = report["results"][0], report["results"][5]
    assert dup["position"] == first["position"] and dup["event_id"] == first["event_id"]
    assert "not valid JSON" in report["results"][6]["errors"][0]["msg"]
    assert report["counts"] == {"recorded": 3, "duplicate": 1, "conflict": 0, "rejected": 3}


def test_history_table_shows_clocks_source_and_hash(run, ndjson: Path) -> None:
    run("ingest", str(ndjson))
    result = run("history", NHS_A)
    assert result.exit_code == 0
    assert "CaseIdentified" in result.stdout
    assert "A81001 (primary_care)" in result.stdout
    assert "2026-03-02T11:15" in result.stdout  # occurred clock


def test_history_of_unknown_or_invalid_number_fails_clearly(run) -> None:
    unknown = run("history", NHS_A)
    assert unknown.exit_code == 1
    assert "no journey is registered" in unknown.stderr
    invalid = run("history", "1234567890")
    assert invalid.exit_code == 2
    assert "check digit" in invalid.stderr


def test_verify_passes_then_names_the_tampered_event(run, ndjson: Path, database_url: str) -> None:
    run("ingest", str(ndjson))
    ok = run("verify")
    assert ok.exit_code == 0, ok.stderr
    assert "ok: 3 events of 2 people verified" in ok.stdout
    digest = ok.stdout.split("head digest ")[1].split()[0]
    assert run("verify", "--expect", digest).exit_code == 0
    assert run("verify", NHS_A).exit_code == 0
    with superuser(database_url) as conn:
        event_id = conn.execute(
            "SELECT event_id FROM ledger_events WHERE type = 'CaseIdentified'"
        ).fetchone()[0]
        conn.execute(
            "UPDATE journeys_events SET state = convert_to(replace("
            "convert_from(state, 'UTF8'), 'frailty', 'other'), 'UTF8')"
        )
    broken = run("verify")
    assert broken.exit_code == 1
    assert str(event_id) in broken.stderr
    one = run("verify", NHS_A)
    assert one.exit_code == 1 and str(event_id) in one.stderr


def test_verify_expect_catches_a_consistent_forgery(run, ndjson: Path, database_url: str) -> None:
    """A forger who rewrites an event AND recomputes its hash, index row and head passes
    the chain check; the Merkle tree (and the auditor's saved digest) still catch it."""
    run("ingest", str(ndjson))
    digest = run("verify").stdout.split("head digest ")[1].split()[0]
    with superuser(database_url) as conn:
        row = conn.execute(
            "SELECT l.position, l.patient_id, l.recorded_at, s.state FROM ledger_events l"
            " JOIN journeys_events s ON s.notification_id = l.position"
            " JOIN identity_register i ON i.patient_id = l.patient_id"
            " WHERE i.nhs_number = %s",
            (NHS_B,),
        ).fetchone()
        position, patient, recorded_at, state = row
        stored = json.loads(bytes(state))
        stored["data"]["practice"] = "A81099"
        content = {
            k: stored[k]
            for k in (
                "event_id",
                "type",
                "schema_version",
                "occurred_at",
                "source",
                "recorded_by",
                "data",
            )
        }
        forged = chain_hash(
            position=position,
            patient_id=patient,
            version=1,
            recorded_at=recorded_at,
            prev_hash=None,
            content_digest=content_hash(content),
        )
        conn.execute(
            "UPDATE journeys_events SET state = %s WHERE notification_id = %s",
            (json.dumps(stored).encode(), position),
        )
        conn.execute(
            "UPDATE ledger_events SET hash = %s, content_hash = %s WHERE position = %s",
            (forged, content_hash(content), position),
        )
        conn.execute("UPDATE ledger_heads SET hash = %s WHERE patient_id = %s", (forged, patient))
    # The chains are internally consistent, but the Merkle tree still holds the old leaf.
    plain = run("verify")
    assert plain.exit_code == 1
    assert f"position {position}: leaf does not match the event's hash" in plain.stderr
    assert "chain broken" not in plain.stderr
    result = run("verify", "--expect", digest)
    assert result.exit_code == 1
    assert "has changed" in result.stderr


def test_erase_forgets_the_number(run, ndjson: Path) -> None:
    run("ingest", str(ndjson))
    assert run("erase", NHS_A).exit_code == 0
    assert run("history", NHS_A).exit_code == 1
    assert run("erase", NHS_A).exit_code == 1


def test_demo_appends_a_cohort_and_is_idempotent(run) -> None:
    first = run("demo", "--people", "25", "--seed", "3")
    assert first.exit_code == 0, first.stderr
    assert "people: 25" in first.stdout
    assert "0 rejected" in first.stdout and "PatientRegistered" in first.stdout
    second = run("demo", "--people", "25", "--seed", "3")
    assert second.exit_code == 0
    assert "this run: 0 recorded" in second.stdout
    assert run("verify").exit_code == 0
