"""Tampering as a superuser would do it (append-only triggers switched off), each caught
by ``verify`` and by the offline audit (``audit verify`` of a bundle, or ``audit
consistency`` of a checkpoint kept from before the edit against one signed after the
forger rebuilt the tree and re-signed with the stolen key: the worst case). The same
edits from an application role are refused by the triggers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from typer.testing import CliRunner

from cli.app import app
from domain import verification
from domain.database import migrate
from domain.integrity import chain_hash, content_hash
from domain.ledger import Ledger
from domain.settings import get_settings
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.tampering import superuser


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_SIGNING_KEY_FILE", str(tmp_path / "signing.key"))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def audited(run, ledger: Ledger, tmp_path: Path) -> dict[str, Any]:
    """Three people's journeys, a signing key, a checkpoint the auditor keeps, and a
    clean verify and audit of everything."""
    created = run("keys", "signing-create")
    assert created.exit_code == 0, created.stderr
    vkey = created.stdout.strip()
    batches = [
        [envelope(nhs=NHS_A), envelope(nhs=NHS_B), envelope(nhs=NHS_C)],
        [envelope("CaseIdentified", nhs=NHS_A, at=later(1))],
        [envelope("ContactRecorded", nhs=n, at=later(2)) for n in (NHS_B, NHS_A, NHS_C)],
        [envelope("ContactRecorded", nhs=NHS_A, at=later(3))],
        [envelope("ContactRecorded", nhs=NHS_C, at=later(4))],
    ]
    for batch in batches:
        assert all(i.status == "recorded" for i in ledger.append_batch(batch).items)
    signed = run("checkpoint")
    assert signed.exit_code == 0, signed.stderr
    old = tmp_path / "kept.checkpoint"
    old.write_text(signed.stdout)
    assert signed.stdout.startswith("carejourney.local/ledger\n9\n")
    clean = run("verify", "--checkpoint", str(old), "--key", vkey)
    assert clean.exit_code == 0, clean.stderr
    for nhs in (NHS_A, NHS_B, NHS_C):
        assert run("verify", nhs).exit_code == 0
        assert _bundle_fails(run, tmp_path, nhs, vkey) is None
    return {"vkey": vkey, "old": old, "ledger": ledger}


def _bundle_fails(run, tmp_path: Path, nhs: str, vkey: str) -> str | None:
    """None if the person's bundle verifies offline, else what ``audit verify`` said."""
    path = tmp_path / f"bundle-{nhs}.json"
    made = run("audit", "bundle", nhs, "--out", str(path))
    if made.exit_code != 0:
        return f"no bundle: {made.stderr}"
    checked = run("audit", "verify", str(path), "--key", vkey)
    if checked.exit_code == 0:
        assert "events verified against the checkpoint" in checked.stdout
        return None
    assert checked.exit_code == 1
    return checked.stderr


def _rows(conn: psycopg.Connection, nhs: str) -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT l.position, l.patient_id, l.version, l.recorded_at, l.hash, s.state"
            " FROM ledger_events l JOIN journeys_events s ON s.notification_id = l.position"
            " JOIN identity_register i ON i.patient_id = l.patient_id"
            " WHERE i.nhs_number = %s ORDER BY l.version",
            (nhs,),
        )
        .fetchall()
    )


def _patient(conn: psycopg.Connection, nhs: str) -> UUID:
    row = conn.execute(
        "SELECT patient_id FROM identity_register WHERE nhs_number = %s", (nhs,)
    ).fetchone()
    return row[0]


def update_payload(conn: psycopg.Connection) -> str:
    conn.execute(
        "UPDATE journeys_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " 'frailty', 'falls'), 'UTF8') WHERE originator_id = %s AND originator_version = 2",
        (_patient(conn, NHS_A),),
    )
    return NHS_A


def delete_one_event(conn: psycopg.Connection) -> str:
    patient = _patient(conn, NHS_A)
    conn.execute(
        "DELETE FROM journeys_events WHERE originator_id = %s AND originator_version = 2",
        (patient,),
    )
    conn.execute("DELETE FROM ledger_events WHERE patient_id = %s AND version = 2", (patient,))
    return NHS_A


def delete_whole_person(conn: psycopg.Connection) -> str:
    patient = _patient(conn, NHS_B)
    conn.execute("DELETE FROM journeys_events WHERE originator_id = %s", (patient,))
    conn.execute("DELETE FROM ledger_events WHERE patient_id = %s", (patient,))
    conn.execute("DELETE FROM ledger_heads WHERE patient_id = %s", (patient,))
    return NHS_B


def truncate_tail(conn: psycopg.Connection) -> str:
    """The last two events go, and their people's heads are wound back to match."""
    last = conn.execute(
        "SELECT position, patient_id FROM ledger_events ORDER BY position DESC LIMIT 2"
    ).fetchall()
    for position, _ in last:
        conn.execute("DELETE FROM journeys_events WHERE notification_id = %s", (position,))
        conn.execute("DELETE FROM ledger_events WHERE position = %s", (position,))
    for _, patient in last:
        conn.execute(
            "UPDATE ledger_heads h SET version = l.version, hash = l.hash, position = l.position"
            " FROM (SELECT version, hash, position FROM ledger_events WHERE patient_id = %s"
            " ORDER BY version DESC LIMIT 1) l WHERE h.patient_id = %s",
            (patient, patient),
        )
    return NHS_C


def _swap(conn: psycopg.Connection, table: str, column: str, a: int, b: int) -> None:
    """Swap two values of a unique column (through a free value: no deferred checks)."""
    update = sql.SQL("UPDATE {t} SET {c} = %s WHERE {c} = %s").format(
        t=sql.Identifier(table), c=sql.Identifier(column)
    )
    conn.execute(update, (-a, a))
    conn.execute(update, (a, b))
    conn.execute(update, (b, -a))


def swap_positions(conn: psycopg.Connection) -> str:
    a, b = (r["position"] for r in (_rows(conn, NHS_A)[1], _rows(conn, NHS_B)[1]))
    _swap(conn, "ledger_events", "position", a, b)
    _swap(conn, "journeys_events", "notification_id", a, b)
    return NHS_A


def swap_notification_ids(conn: psycopg.Connection) -> str:
    a, b = (r["position"] for r in (_rows(conn, NHS_A)[2], _rows(conn, NHS_C)[1]))
    _swap(conn, "journeys_events", "notification_id", a, b)
    return NHS_A


def recompute_chain(conn: psycopg.Connection) -> str:
    """Edit an event and recompute its content hash, every later link and the head:
    the person's chain is internally consistent again."""
    rows = _rows(conn, NHS_A)
    prev = rows[0]["hash"]
    for n, row in enumerate(rows[1:], start=2):
        stored = json.loads(bytes(row["state"]))
        if n == 2:
            stored["data"]["criteria"] = ["falls"]
            conn.execute(
                "UPDATE journeys_events SET state = %s WHERE notification_id = %s",
                (json.dumps(stored).encode(), row["position"]),
            )
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
        digest = content_hash(content)
        link = chain_hash(
            position=row["position"],
            patient_id=row["patient_id"],
            version=row["version"],
            recorded_at=row["recorded_at"],
            prev_hash=prev,
            content_digest=digest,
        )
        conn.execute(
            "UPDATE ledger_events SET hash = %s, prev_hash = %s, content_hash = %s"
            " WHERE position = %s",
            (link, prev, digest, row["position"]),
        )
        prev = link
    conn.execute(
        "UPDATE ledger_heads SET hash = %s WHERE patient_id = %s", (prev, rows[0]["patient_id"])
    )
    return NHS_A


# Which offline check catches each edit: the person's bundle (made from the tampered
# database, proofs against the checkpoint taken before), and the consistency of the kept
# checkpoint with one the forger signs after rebuilding the tree from the edited events.
# An edit that leaves every chain hash alone (a payload, a notification id) leaves the
# rebuilt tree equal, so only the bundle sees it; a tail cut leaves the person's remaining
# chain valid, so only consistency does.
CASES: dict[str, tuple[Callable[[psycopg.Connection], str], bool, bool]] = {
    "update payload": (update_payload, True, False),
    "delete one event": (delete_one_event, True, True),
    "delete a whole person": (delete_whole_person, True, True),
    "truncate the tail": (truncate_tail, False, True),
    "swap positions": (swap_positions, True, True),
    "swap notification ids": (swap_notification_ids, True, False),
    "recompute a chain after an edit": (recompute_chain, True, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_caught(
    run, audited: dict[str, Any], database_url: str, tmp_path: Path, case: str
) -> None:
    tamper, bundle_sees, consistency_sees = CASES[case]
    vkey, old = audited["vkey"], audited["old"]
    with superuser(database_url) as conn:
        nhs = tamper(conn)
    caught = run("verify")
    assert caught.exit_code == 1, caught.stdout
    assert run("verify", "--checkpoint", str(old), "--key", vkey).exit_code == 1
    person = run("verify", nhs)  # a cut tail leaves the person's remaining chain whole
    assert person.exit_code == (0 if case == "truncate the tail" else 1), person.stdout

    bundle = _bundle_fails(run, tmp_path, nhs, vkey)
    assert (bundle is not None) == bundle_sees, bundle

    # The forger covers their tracks: the tree rebuilt from the edited events, the
    # stored checkpoints gone, a new checkpoint signed with the (stolen) key.
    with superuser(database_url) as conn:
        conn.execute("DELETE FROM ledger_tree")
        conn.execute("DELETE FROM ledger_checkpoints")
        migrate(conn)
    signed = run("checkpoint")
    assert signed.exit_code == 0, signed.stderr
    new = tmp_path / "new.checkpoint"
    new.write_text(signed.stdout)
    kept = run("verify", "--checkpoint", str(old), "--key", vkey)
    assert kept.exit_code == 1, kept.stdout
    if consistency_sees:  # the rebuilt tree is another tree
        assert "kept checkpoint #1 (tree size 9)" in kept.stderr
    grown = run("audit", "consistency", str(old), str(new), "--key", vkey)
    assert (grown.exit_code == 1) == consistency_sees, grown.stdout + grown.stderr
    if consistency_sees:
        assert "FAILED" in grown.stderr
    assert bundle_sees or consistency_sees


def test_verify_names_an_unknown_or_eventless_person(
    run, audited: dict[str, Any], database_url: str
) -> None:
    with superuser(database_url) as conn:
        delete_whole_person(conn)
    result = run("verify", NHS_B)
    assert result.exit_code == 1
    assert "no events are recorded for this person" in result.stderr
    assert "verified" not in result.stdout
    unknown = run("verify", "9000000009")
    assert unknown.exit_code == 1
    assert "no journey is registered" in unknown.stderr


APP_ROLE = "carejourney_app_test"


@pytest.fixture
def app_role_url(database_url: str) -> str:
    """A service role that owns nothing: it may read and append (UPDATE is granted only
    because ``LOCK TABLE ... IN EXCLUSIVE MODE`` requires it), nothing more."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "DO $$ BEGIN CREATE ROLE {} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL;"
                " END $$"
            ).format(sql.Identifier(APP_ROLE))
        )
        role = sql.Identifier(APP_ROLE)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
            ).format(role)
        )
        conn.execute(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(role)
        )
    return make_conninfo(database_url, user=APP_ROLE)


EDITS = [
    "UPDATE journeys_events SET state = state",
    "DELETE FROM journeys_events",
    "TRUNCATE journeys_events",
    "UPDATE ledger_events SET hash = hash",
    "DELETE FROM ledger_events",
    "TRUNCATE ledger_events CASCADE",
    "UPDATE ledger_tree SET hashes = hashes",
    "DELETE FROM ledger_tree",
    "DELETE FROM ledger_checkpoints",
    "ALTER TABLE ledger_events DISABLE TRIGGER carejourney_append_only",
    "SET session_replication_role = replica",
]


def test_the_application_role_cannot_edit_history(
    audited: dict[str, Any], app_role_url: str
) -> None:
    for edit in EDITS:
        with (
            psycopg.connect(app_role_url, autocommit=True) as conn,
            pytest.raises(psycopg.Error) as refused,
        ):
            conn.execute(edit)
        assert refused.value.sqlstate in ("42501",), (edit, refused.value)
    with psycopg.connect(app_role_url, autocommit=True) as conn:
        for table in ("journeys_events", "ledger_events"):
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            assert count.fetchone()[0] >= 9
        # erase touches only the identity register, which stays an ordinary table
        conn.execute("DELETE FROM identity_register WHERE nhs_number = %s", (NHS_C,))


def test_the_owner_is_refused_too(audited: dict[str, Any], database_url: str) -> None:
    """Triggers fire for the tables' owner (the superuser here) unless switched off."""
    for edit in EDITS[:9]:
        with (
            psycopg.connect(database_url, autocommit=True) as conn,
            pytest.raises(psycopg.Error) as refused,
        ):
            conn.execute(edit)
        assert "append-only" in str(refused.value)


def test_erase_still_works(run, audited: dict[str, Any]) -> None:
    assert run("erase", NHS_A).exit_code == 0
    assert run("history", NHS_A).exit_code == 1
    assert run("verify").exit_code == 0


def swap_own_positions(conn: psycopg.Connection) -> str:
    """Two of one person's events change places in the global order (both tables)."""
    a, b = (r["position"] for r in _rows(conn, NHS_A)[1:3])
    _swap(conn, "ledger_events", "position", a, b)
    _swap(conn, "journeys_events", "notification_id", a, b)
    return NHS_A


def edit_index_row(conn: psycopg.Connection) -> str:
    conn.execute(
        "UPDATE ledger_events SET occurred_at = occurred_at - interval '1 day'"
        " WHERE patient_id = %s AND version = 3",
        (_patient(conn, NHS_C),),
    )
    return NHS_C


def head_ahead(conn: psycopg.Connection) -> str:
    conn.execute(
        "UPDATE ledger_heads SET version = version + 1 WHERE patient_id = %s",
        (_patient(conn, NHS_B),),
    )
    return NHS_B


@pytest.mark.parametrize(
    "tamper",
    [*(c[0] for c in CASES.values()), swap_own_positions, edit_index_row, head_ahead],
    ids=[*CASES, "swap a person's own positions", "edit an index row", "head ahead"],
)
def test_the_whole_ledger_pass_names_what_the_per_person_check_names(
    audited: dict[str, Any], database_url: str, tamper: Callable[[psycopg.Connection], str]
) -> None:
    """``verify_all`` reads every chain in one pass in position order; the oracle is the
    per-person check (``_verify_person``) run for every person, as verify_all once did."""
    ledger: Ledger = audited["ledger"]
    with superuser(database_url) as conn:
        tamper(conn)
    report = ledger.verify_all()
    with ledger.connection() as conn:
        people = [
            r["patient_id"]
            for r in conn.execute(
                "SELECT patient_id FROM ledger_heads UNION SELECT patient_id FROM ledger_events"
            )
        ]
        oracle = {b for p in people if (b := verification._verify_person(ledger, conn, p))}
    chains = {b for b in report.breaks if "has no ledger index row" not in b.reason}
    assert chains == oracle  # the same people, the same first break each
    assert not report.ok  # and what no chain shows, the tree does
