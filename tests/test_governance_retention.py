"""Nothing kept forever: refused messages are purged after
``CAREJOURNEY_REJECTION_RETENTION_DAYS`` (``carejourney retention run``, and the consumer's
scheduled step), and ``erase`` removes a person's identifiers from kept rejections (raw
HL7 too) and identity updates (issue 11)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from typer.testing import CliRunner

from cli.app import app as cli
from consumers import adt_ingest, deadletter, retention
from consumers.events import envelope_feed
from consumers.feed import record_batch
from domain.ledger import Ledger
from domain.settings import get_settings
from tests.adt_messages import FACILITIES, adt
from tests.envelopes import NHS_A, NHS_B, envelope


def _record(topic: str, offset: int, value: bytes, key: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic, 0, -1, offset, 0, 0, key, value, [("trace", b"t1")], None,
        len(key or b""), len(value), -1,
    )  # fmt: skip


def _rejections(ledger: Ledger) -> list[dict]:
    with ledger.connection() as conn:
        return conn.execute(
            'SELECT "offset", key, value, sent_at, scrubbed_at FROM consumer_rejections'
            ' ORDER BY "offset"'
        ).fetchall()


def _refuse_three(ledger: Ledger) -> None:
    feed = envelope_feed(ledger.settings, ["t.keep"])
    bad = json.dumps(envelope("Nope", nhs=NHS_B, data={})).encode()
    record_batch(
        ledger,
        feed,
        [_record("t.keep", n, bad, NHS_B.encode()) for n in range(3)],
        {("t.keep", 0): None},
    )


def test_refused_messages_are_purged_after_the_retention(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    _refuse_three(ledger)
    with ledger.connection() as conn:
        conn.execute(
            "UPDATE consumer_rejections SET created_at = now() - interval '31 days'"
            ' WHERE "offset" < 2'
        )
        conn.execute('UPDATE consumer_rejections SET sent_at = now() WHERE "offset" = 0')
        assert retention.purge(conn, 45).as_dict() == {"deleted": 0, "stripped": 0}
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["retention", "run"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "retention 30 days: 1 refused message(s) deleted, 1 stripped" in result.stdout
    rows = _rejections(ledger)
    assert [r["offset"] for r in rows] == [1, 2]  # the old sent one is gone
    assert rows[0]["value"] is None and rows[0]["key"] is None  # old, unsent: stripped
    assert NHS_B.encode() in bytes(rows[1]["value"])  # young: kept whole
    with ledger.connection() as conn:
        assert retention.purge(conn, 30).as_dict() == {"deleted": 0, "stripped": 0}


def test_the_consumer_loop_runs_the_retention_step(ledger: Ledger):
    """The scheduled step of ``carejourney consume`` (consumers/loop.py)."""
    import threading

    from consumers.broker import Broker
    from consumers.loop import ConsumerLoop, LoopOptions

    _refuse_three(ledger)
    with ledger.connection() as conn:
        conn.execute("UPDATE consumer_rejections SET created_at = now() - interval '40 days'")
    loop = ConsumerLoop(
        ledger,
        envelope_feed(ledger.settings, ["t.keep"]),
        Broker("127.0.0.1:1", (2, 8)),
        LoopOptions(group_id=None),
        threading.Event(),
    )
    assert loop._retention_due <= 0  # due at start, then hourly
    loop._apply_retention()
    assert all(r["value"] is None for r in _rejections(ledger))
    assert timedelta(hours=1).total_seconds() == retention.RUN_EVERY_SECONDS


def test_erase_removes_identifiers_from_raw_hl7_and_identity_updates(ledger: Ledger, settings):
    adt_settings = settings.model_copy(update={"adt_facilities": FACILITIES})
    adt_ledger = Ledger(ledger.database_url, adt_settings)
    try:
        adt_ingest.migrate(adt_ledger)
        feed = adt_ingest.kafka_feed(adt_settings, ["t.adt"])
        admitted = adt("A01", control="M1").encode()
        update = adt("A08", control="M2", pid_fields={11: "1 HIGH ST^^LEEDS"}).encode()
        refused = adt("A01", control="M3", facility="NOPE").encode()  # unknown facility
        record_batch(
            adt_ledger, feed, [_record("t.adt", 0, admitted, NHS_A.encode())], {("t.adt", 0): None}
        )
        record_batch(
            adt_ledger,
            feed,
            [
                _record("t.adt", 1, update, NHS_A.encode()),
                _record("t.adt", 2, refused, NHS_A.encode()),
            ],
            {("t.adt", 0): 0},
        )
        with adt_ledger.connection() as conn:
            updates = conn.execute("SELECT count(*) AS n FROM adt_identity_updates").fetchone()
            assert updates["n"] == 1
        assert NHS_A.encode() in bytes(_rejections(adt_ledger)[0]["value"])  # raw HL7 kept
        patient, scrubbed = deadletter.erase_person(adt_ledger, NHS_A)
        assert patient is not None and scrubbed == 1
        kept = _rejections(adt_ledger)[0]
        assert kept["value"] is None and kept["scrubbed_at"] is not None
        with adt_ledger.connection() as conn:
            updates = conn.execute("SELECT count(*) AS n FROM adt_identity_updates").fetchone()
        assert updates["n"] == 0
    finally:
        adt_ledger.close()


def test_the_embedded_data_dir_is_under_the_current_directory(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """Not beside the installed package (``site-packages/.carejourney`` from a wheel)."""
    from api.security import keys_path
    from domain.settings import Settings

    monkeypatch.delenv("CAREJOURNEY_DATA_DIR", raising=False)
    monkeypatch.delenv("CAREJOURNEY_API_KEYS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == tmp_path / ".carejourney"
    assert keys_path(settings) == tmp_path / ".carejourney" / "api-keys.json"
