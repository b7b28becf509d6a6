"""Person merges in every projection, whatever the runner's batching (issue 12): the live
read models after any split of the log into batches equal a rebuild, also when the
merged person's events and the merge are caught up in one batch."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from domain.ledger import Ledger
from domain.nhs_number import make_nhs_number
from projections import catalog, log, queries
from projections.rebuild import rebuild
from projections.runner import Runner
from tests.envelopes import envelope, later, retraction
from tests.test_projections_runner import dump

_numbers = (n for n in map(make_nhs_number, itertools.count(600_000_001)) if n is not None)


def fresh_people(count: int) -> list[str]:
    return [next(_numbers) for _ in range(count)]


def merge(survivor: str, merged: str, at: float) -> dict[str, Any]:
    return envelope(
        "PatientsMerged",
        nhs=survivor,
        at=later(at),
        organisation="RXH01",
        setting="acute",
        data={"merged_nhs_number": merged},
    )


def reset(runner: Runner) -> None:
    """Empty every read model and put every projection back at position 0."""
    with log.connect(runner.database_url) as conn, conn.transaction():
        for table in catalog.tables(catalog.NAMES):
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.name)))
        conn.execute("UPDATE projection_positions SET position = 0")


def catch_up(runner: Runner, sizes: list[int]) -> None:
    """Catch up in batches of the given sizes (the last size repeats)."""
    with runner.connect(autocommit=True) as conn:
        for size in itertools.chain(sizes, itertools.repeat(sizes[-1])):
            runner.batch_size = size
            if runner.step(conn) is None:
                return


def test_merge_and_the_merged_persons_events_in_one_batch(
    ledger: Ledger, database_url: str
) -> None:
    a, b = fresh_people(2)
    result = ledger.append_batch(
        [
            envelope(nhs=a),
            envelope("CoordinatorAssigned", nhs=a, at=later(2)),
            envelope(nhs=b, data={"practice": "A81002"}, at=later(1)),
            envelope("Admitted", nhs=b, at=later(3), organisation="RXH01", setting="acute"),
            merge(a, b, 5),
        ]
    )
    assert result.counts()["recorded"] == 5
    runner = Runner.for_ledger(ledger, batch_size=1_000)
    runner.migrate()
    runner.run_once()  # one batch holds everything
    survivor = ledger.patient_id(a)
    assert survivor is not None and survivor == ledger.patient_id(b)
    with ledger.connection() as conn:
        now = queries.current_coordinator(conn, survivor)
        assert now is not None and now["named"] and now["coordinator"]["id"] == "N100"
        assert [s["encounter_id"] for s in queries.spells(conn, survivor)] == ["E1"]
    live = dump(database_url)
    rebuild(runner)
    assert dump(database_url) == live


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["register", "assign", "admit", "discharge", "merge", "retract"]),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 48),
    ),
    min_size=3,
    max_size=14,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=ACTIONS, sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6))
def test_any_batching_of_merges_and_retractions_equals_a_rebuild(
    ledger: Ledger, database_url: str, actions: list[tuple[str, int, int, int]], sizes: list[int]
) -> None:
    people = fresh_people(3)
    corrections: list[dict[str, Any]] = []  # merges and retractions recorded so far
    for kind, who, other, hour in actions:
        nhs = people[who]
        if kind == "register":
            item = envelope(nhs=nhs, at=later(hour))
        elif kind == "assign":
            item = envelope("CoordinatorAssigned", nhs=nhs, at=later(hour))
        elif kind in ("admit", "discharge"):
            item = envelope(
                "Admitted" if kind == "admit" else "Discharged",
                nhs=nhs,
                at=later(hour),
                organisation="RXH01",
                setting="acute",
            )
        elif kind == "merge":
            item = merge(nhs, people[other], hour)
        elif corrections:
            item = retraction(corrections[other % len(corrections)], at=later(hour))
        else:
            continue
        if ledger.append(item).status == "recorded" and kind in ("merge", "retract"):
            corrections.append(item)
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    reset(runner)
    catch_up(runner, sizes)
    live = dump(database_url)
    rebuild(runner)
    assert dump(database_url) == live
