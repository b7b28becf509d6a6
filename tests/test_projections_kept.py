"""The runner's kept streams (``log.Kept``, issue 16): a step that reads only what each
person gained since the last step folds exactly what re-reading whole streams folds, at
every step, whatever the batching, the late (back-dated) facts, retractions, merges,
evictions and a projection set back; and the runner's rows still equal a rebuild's."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.ledger import Ledger
from projections import catalog, log
from projections.batches import Folded, fold_people, touched_between
from projections.rebuild import rebuild
from projections.runner import Runner
from tests.envelopes import envelope, later, retraction
from tests.test_projections_merge_batches import fresh_people, merge, reset
from tests.test_projections_runner import dump

KINDS = ["register", "assign", "admit", "discharge", "contact", "merge", "retract"]
ACTIONS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 2), st.integers(0, 96)),
    min_size=4,
    max_size=24,
)


def record(ledger: Ledger, people: list[str], actions: list[tuple[str, int, int, int]]) -> None:
    """Append the actions in order; the hour is the occurred time, so most facts arrive
    out of order (back-dated) against the ones already recorded."""
    corrections: list[dict[str, Any]] = []
    for kind, who, other, hour in actions:
        nhs = people[who]
        if kind == "register":
            item = envelope(nhs=nhs, at=later(hour))
        elif kind == "assign":
            item = envelope("CoordinatorAssigned", nhs=nhs, at=later(hour))
        elif kind == "contact":
            item = envelope("ContactRecorded", nhs=nhs, at=later(hour), setting="community")
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
            item = envelope("ContactRecorded", nhs=nhs, at=later(hour), setting="community")
        if ledger.append(item).status == "recorded" and kind in ("merge", "retract", "contact"):
            corrections.append(item)


def rows(folded: Folded) -> tuple[list[UUID], dict[str, list[str]]]:
    """Whose rows are replaced and the rows, in a stable order (the order people are
    folded in is not a result: the rows are written with COPY)."""
    return folded.people, {name: sorted(map(repr, found)) for name, found in folded.rows.items()}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    actions=ACTIONS,
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    limit=st.integers(0, 12),
    back=st.integers(0, 5),
)
def test_kept_streams_fold_as_whole_streams_at_every_step(
    ledger: Ledger,
    database_url: str,
    actions: list[tuple[str, int, int, int]],
    cuts: list[int],
    limit: int,
    back: int,
) -> None:
    people = fresh_people(3)
    half = len(actions) // 2
    record(ledger, people, actions[:half])
    runner = Runner.for_ledger(ledger)
    kept = log.Kept(limit)  # small limits evict people between steps
    with runner.connect(autocommit=True) as conn:
        base = log.head(conn)
        record(ledger, people, actions[half:])
        head = log.head(conn)
        sums = itertools.accumulate(itertools.chain([base], itertools.cycle(cuts)))
        ends = [min(e, head) for e in itertools.takewhile(lambda e: e < head + max(cuts), sums)]
        # A projection set back (``migrate`` after a reshape) asks for an earlier position.
        ends.insert(min(back, len(ends)), max(0, base - back))
        after = 0
        for upto in ends:
            touched = touched_between(conn, min(after, upto), upto) if after < upto else []
            touched = touched or touched_between(conn, 0, upto)
            args = (conn, touched, upto, catalog.NAMES, runner.config, runner.loads)
            assert rows(fold_people(*args, kept)) == rows(fold_people(*args))
            assert kept.size <= max(limit, 0)
            after = upto


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=ACTIONS, size=st.integers(1, 5), rounds=st.integers(2, 4))
def test_the_runner_with_kept_streams_equals_a_rebuild_after_every_delivery(
    ledger: Ledger,
    database_url: str,
    actions: list[tuple[str, int, int, int]],
    size: int,
    rounds: int,
) -> None:
    people = fresh_people(3)
    runner = Runner.for_ledger(ledger, batch_size=size, kept_events=8)
    runner.migrate()
    reset(runner)
    step = -(-len(actions) // rounds)
    for start in range(0, len(actions), step):
        record(ledger, people, actions[start : start + step])
        runner.run_once()  # the same runner (and its kept streams) across deliveries
        live = dump(database_url)
        rebuild(runner)
        assert dump(database_url) == live
