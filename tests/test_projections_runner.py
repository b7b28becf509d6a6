"""The projection runner against a real PostgreSQL: batched catch-up equals a rebuild on
the demo cohort, rebuild-and-swap under a live runner and readers, merges, LISTEN, the
CLI reads, and the crash test (the runner SIGKILLed between batches and inside one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from cli.app import app
from domain.database import with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from projections import bulk, catalog, fold, log, queries
from projections.rebuild import rebuild
from projections.runner import Runner, wait_until_caught_up
from tests.envelopes import NHS_A, NHS_B, envelope, later, retraction

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 400  # events per append: several batches, as a feed delivers them


def append(ledger: Ledger, envelopes: list[dict[str, Any]]) -> None:
    for start in range(0, len(envelopes), CHUNK):
        result = ledger.append_batch(envelopes[start : start + CHUNK])
        assert result.counts()["rejected"] == 0 and result.counts()["conflict"] == 0


def cohort(people: int, seed: int = 7) -> list[dict[str, Any]]:
    return delivery_order(list(generate_people(people=people, seed=seed)), seed)


def dump(url: str, names: tuple[str, ...] = catalog.NAMES) -> dict[str, list[tuple]]:
    """Every projection table's rows, in a stable order."""
    out = {}
    with log.connect(url) as conn:
        for table in catalog.tables(names):
            query = sql.SQL("SELECT * FROM {t} ORDER BY ({t}.*)::text").format(
                t=sql.Identifier(table.name)
            )
            out[table.name] = conn.execute(query).fetchall()
    return out


@pytest.fixture
def runner(ledger: Ledger) -> Runner:
    made = Runner.for_ledger(ledger, batch_size=400)
    made.migrate()
    return made


def test_batched_catch_up_of_a_late_delivered_cohort_equals_a_rebuild(
    ledger: Ledger, runner: Runner, database_url: str
) -> None:
    envelopes = cohort(150)
    for part in range(4):  # the runner catches up between deliveries: late events refold
        append(ledger, envelopes[part * len(envelopes) // 4 : (part + 1) * len(envelopes) // 4])
        steps = runner.run_once()
        assert len(steps) >= 1
    assert all(s["lag"] == 0 for s in runner.status())
    live = dump(database_url)
    assert len(live["journey_timeline"]) == len(envelopes)
    assert len(live["coordination_status"]) == 150
    report = rebuild(runner)
    assert report is not None and report.events == len(envelopes) and report.people == 150
    assert dump(database_url) == live
    assert {s["rebuilt_at"] is not None for s in runner.status()} == {True}


def test_rebuild_split_across_processes_gives_the_same_rows(
    ledger: Ledger, runner: Runner, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(ledger, cohort(60, seed=5))
    runner.run_once()
    live = dump(database_url)
    monkeypatch.setattr(bulk, "PARALLEL_FROM", 0)  # split even this small ledger
    runner.workers = 3
    seen: list[tuple[int, int]] = []
    report = rebuild(runner, progress=lambda done, total: seen.append((done, total)))
    assert report is not None and report.people == 60
    assert dump(database_url) == live
    assert seen[-1][0] == seen[-1][1] == report.events


def test_fast_log_reader_decodes_exactly_what_the_ledger_reads(
    ledger: Ledger, database_url: str
) -> None:
    append(ledger, cohort(40))
    with log.connect(database_url) as conn:
        head = log.head(conn)
        fast = list(log.read_log(conn, 0, head, log.state_loader(ledger.mapper)))
    slow = ledger.read_log(0, head + 1)
    assert fast == slow and len(fast) == head


def test_queries_answer_for_the_demo_cohort_as_the_folds_do(ledger: Ledger, runner: Runner) -> None:
    append(ledger, cohort(60))
    runner.run_once()
    with ledger.connection() as conn:
        people = [
            r["patient_id"]
            for r in conn.execute(
                "SELECT patient_id FROM coordination_status ORDER BY handoffs DESC LIMIT 5"
            )
        ]
        for patient in people:
            events = ledger.history(patient)
            person = fold.prepare(events, patient, runner.config)
            rows = catalog.person_rows(person, catalog.NAMES)
            now = queries.current_coordinator(conn, patient)
            assert now is not None and now["handoffs"] == rows["coordination_status"][0].handoffs
            assert [e["event_id"] for e in queries.timeline(conn, patient)] == [
                str(e.event_id) for e in rows["journey_timeline"]
            ]
            intervals = queries.coordinator_intervals(conn, patient)
            assert len(intervals) == len(rows["coordinator_intervals"])
            for interval in intervals:
                at = interval["valid_from"]
                answer = queries.coordinator_as_of(conn, patient, at)
                if interval["valid_to"] != at:  # zero-length intervals are never "as of"
                    assert answer["coordinator"]["id"] == interval["coordinator_id"]
        caseload_of = now["coordinator"]["id"]
        assert (
            any(r["patient_id"] == now["patient_id"] for r in queries.caseload(conn, caseload_of))
            == now["named"]
        )
        waiting = queries.unassigned(conn)
        assert waiting == sorted(waiting, key=lambda r: r["since"])
        assert all(r["days"] >= 0 for r in waiting)


def test_rebuild_swaps_in_under_a_live_runner_while_reads_keep_working(
    ledger: Ledger, runner: Runner, database_url: str
) -> None:
    envelopes = cohort(120, seed=3)
    append(ledger, envelopes[:1200])
    runner.run_once()
    patient = ledger.patient_id(envelopes[0]["nhs_number"])
    stop = threading.Event()
    failures: list[BaseException] = []
    reads = [0]

    def read() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    assert queries.timeline(conn, patient)
                    assert queries.current_coordinator(conn, patient) is not None
                    reads[0] += 1
                except BaseException as exc:  # reported by the assertion below
                    failures.append(exc)
                    return

    follower = threading.Thread(target=runner.follow, args=(stop, 0.05))
    reader = threading.Thread(target=read)
    follower.start()
    reader.start()
    try:
        writer = threading.Thread(target=append, args=(ledger, envelopes[1200:]))
        writer.start()
        report = rebuild(runner)
        writer.join()
        assert report is not None
        assert wait_until_caught_up(runner)
    finally:
        stop.set()
        follower.join()
        reader.join()
    assert failures == [] and reads[0] > 0
    live = dump(database_url)
    rebuild(runner)
    assert dump(database_url) == live
    assert len(live["journey_timeline"]) == len(envelopes)


def test_merge_folds_both_people_into_the_survivor_until_it_is_retracted(
    ledger: Ledger, runner: Runner
) -> None:
    append(
        ledger,
        [
            envelope(nhs=NHS_A),
            envelope("CoordinatorAssigned", at=later(2)),
            envelope(nhs=NHS_B, data={"practice": "A81002"}, at=later(1)),
            envelope("Admitted", nhs=NHS_B, at=later(3), organisation="RXH01", setting="acute"),
        ],
    )
    runner.run_once()
    a, b = ledger.patient_id(NHS_A), ledger.patient_id(NHS_B)
    joined = envelope(
        "PatientsMerged",
        nhs=NHS_A,
        at=later(5),
        organisation="RXH01",
        setting="acute",
        data={"merged_nhs_number": NHS_B},
    )
    append(ledger, [joined])
    runner.run_once()
    with ledger.connection() as conn:
        assert queries.current_coordinator(conn, b)["patient_id"] == str(a)  # resolved
        assert [s["encounter_id"] for s in queries.spells(conn, a)] == ["E1"]
        streams = {e["stream_patient_id"] for e in queries.timeline(conn, a)}
        assert streams == {str(a), str(b)}
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM journey_timeline WHERE patient_id = %s", (b,)
            ).fetchone()["n"]
            == 0
        )
    append(ledger, [retraction(joined, at=later(6), organisation=joined["source"]["organisation"])])
    runner.run_once()
    with ledger.connection() as conn:
        assert queries.spells(conn, a) == []
        assert [s["encounter_id"] for s in queries.spells(conn, b)] == ["E1"]
        assert queries.current_coordinator(conn, b)["practice"] == "A81002"


def test_follow_wakes_on_notify(ledger: Ledger, runner: Runner) -> None:
    stop = threading.Event()
    # It polls every 10 minutes: only the NOTIFY of the append can wake it in time.
    follower = threading.Thread(target=runner.follow, args=(stop, 600.0))
    follower.start()
    try:
        append(ledger, [envelope(), envelope("CaseIdentified", at=later(1))])
        assert wait_until_caught_up(runner, timeout=60)
    finally:
        stop.set()
        follower.join()
    with ledger.connection() as conn:
        assert len(queries.timeline(conn, ledger.patient_id(NHS_A))) == 2


def test_a_read_model_stored_in_an_older_shape_is_rebuilt_with_its_new_columns(
    ledger: Ledger, runner: Runner
) -> None:
    append(ledger, [envelope(), envelope("CoordinatorAssigned", at=later(1))])
    runner.run_once()
    before = dump(runner.database_url)
    with log.connect(runner.database_url) as conn:  # as a release before the column was
        conn.execute("ALTER TABLE coordinator_intervals DROP COLUMN way_in")
        conn.execute("ALTER TABLE coordinator_intervals DROP COLUMN reason")
    runner.migrate()
    with log.connect(runner.database_url) as conn:
        positions = runner.positions(conn)
        assert positions["coordinators"] == 0 and positions["timeline"] == 2
        assert not conn.execute("SELECT 1 FROM coordinator_intervals").fetchall()
        assert not conn.execute("SELECT 1 FROM coordination_status").fetchall()
    runner.run_once()
    assert dump(runner.database_url) == before
    runner.migrate()  # the shape matches now: nothing is reset
    with log.connect(runner.database_url) as conn:
        assert runner.positions(conn)["coordinators"] == 2


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    invoker = CliRunner()
    yield lambda *args: invoker.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_runs_reports_rebuilds_and_reads_a_person(cli, ledger: Ledger) -> None:
    handoff = {
        "from_id": "N100",
        "to": {
            "id": "S200",
            "role": "specialist_nurse",
            "organisation": "RYX01",
            "setting": "community",
        },
    }
    append(
        ledger,
        [
            envelope(),
            envelope("CoordinatorAssigned", at=later(1)),
            envelope("CoordinatorHandedOff", at=later(48), data=handoff),
            envelope("Admitted", at=later(50), organisation="RXH01", setting="acute"),
        ],
    )
    before = json.loads(cli("projections", "status", "--json").stdout)
    assert {s["lag"] for s in before} == {4}
    result = cli("projections", "run", "--once")
    assert result.exit_code == 0, result.output
    status = json.loads(cli("projections", "status", "--json").stdout)
    assert {(s["position"], s["lag"]) for s in status} == {(4, 0)}
    now = json.loads(cli("coordinator", NHS_A, "--json").stdout)
    assert now["current"]["coordinator"]["id"] == "S200" and now["current"]["named"]
    then = json.loads(cli("coordinator", NHS_A, "--as-of", later(24).isoformat(), "--json").stdout)
    assert then["as_of"]["coordinator"]["id"] == "N100"
    table = cli("journey", NHS_A)
    assert table.exit_code == 0
    assert "Admitted (emergency) to RXH01 [E1]" in table.stdout
    assert "in hospital" in table.stdout
    rebuilt = cli("projections", "rebuild", "timeline")
    assert rebuilt.exit_code == 0 and "swapped in at position 4" in rebuilt.stdout
    assert cli("projections", "rebuild", "nonsense").exit_code != 0
    missing = cli("coordinator", NHS_B)
    assert missing.exit_code == 1 and "no journey" in missing.stderr


# -- crash safety ---------------------------------------------------------------------------


def clone(url: str, suffix: str) -> str:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    copy = f"{name}_{suffix}"
    with psycopg.connect(with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(copy), sql.Identifier(name)
            )
        )
    return with_dbname(url, copy)


def drop(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def start_runner(url: str, *args: str, batch: int = 300) -> subprocess.Popen:
    env = dict(os.environ, CAREJOURNEY_DATABASE_URL=url)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.app", "projections", "run", "--batch", str(batch), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def positions(url: str) -> dict[str, int]:
    with log.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('projection_positions')").fetchone()[0] is None:
            return {}
        return dict(conn.execute("SELECT name, position FROM projection_positions").fetchall())


def wait_for(predicate: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def runner_waits_on_a_lock(conn: psycopg.Connection, query_part: str) -> bool:
    conn.execute("SELECT pg_stat_clear_snapshot()")  # else one snapshot per transaction
    rows = conn.execute(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchall()
    return any(query_part in r[0] for r in rows)


@pytest.mark.slow  # runs the CLI in subprocesses
def test_runner_killed_between_batches_and_inside_one_resumes_to_identical_rows(
    ledger: Ledger, database_url: str
) -> None:
    append(ledger, cohort(80, seed=11))
    head = ledger.head_position()
    ledger.close()
    untouched = clone(database_url, "calm")
    try:
        calm = start_runner(untouched, "--once")
        assert calm.wait(timeout=300) == 0, calm.stderr.read() if calm.stderr else ""
        expected = dump(untouched)
    finally:
        drop(untouched)

    with log.connect(database_url, autocommit=True) as watcher:
        # 1. Between batches: once a batch has committed, hold the tracking table so the
        #    next batch cannot start, and kill the runner there. Small batches, so the
        #    runner cannot reach the head between the check and the lock on a fast machine
        #    (with 300 it once did: four batches of this cohort take well under a second).
        victim = start_runner(database_url, batch=20)
        wait_for(lambda: 0 < positions(database_url).get("coordinators", 0) < head, "a first batch")
        with watcher.transaction():
            watcher.execute("LOCK TABLE projection_positions IN ACCESS EXCLUSIVE MODE")
            wait_for(
                lambda: runner_waits_on_a_lock(watcher, "projection_positions"),
                "the runner to block before its next batch",
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        between = positions(database_url)
        assert len(set(between.values())) == 1 and 0 < between["coordinators"] < head
        rows_between = dump(database_url)

        # 2. Inside a batch: the runner has rewritten the first tables of the next batch
        #    when it finds quality_findings locked; kill it mid-transaction.
        with watcher.transaction():
            watcher.execute("LOCK TABLE quality_findings IN SHARE MODE")
            victim = start_runner(database_url, batch=20)
            wait_for(
                lambda: runner_waits_on_a_lock(watcher, "quality_findings"),
                "the runner to block inside a batch",
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        assert positions(database_url) == between  # nothing of that batch committed
        assert dump(database_url) == rows_between

    resumed = start_runner(database_url, "--once")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert set(positions(database_url).values()) == {head}
    assert dump(database_url) == expected


@pytest.mark.slow  # runs the CLI in subprocesses
def test_following_runner_stops_cleanly_on_sigterm(ledger: Ledger, database_url: str) -> None:
    append(ledger, [envelope(), envelope("CaseIdentified", at=later(1))])
    follower = start_runner(database_url, "--poll", "600")
    wait_for(lambda: set(positions(database_url).values()) == {2}, "the runner to catch up")
    append(ledger, [envelope("ContactRecorded", at=later(2))])  # followed via NOTIFY
    wait_for(lambda: set(positions(database_url).values()) == {3}, "the runner to follow")
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=60) == 0
