"""Append throughput: raw COPY vs plain eventsourcing vs the ledger's validated batch append.

Run: ``.venv/bin/python bench/append.py [--events 100000] [--batch 2000]``

All three runs use the same generated envelopes on the same PostgreSQL server (the
configured ``CAREJOURNEY_DATABASE_URL``, else the embedded one), each in a fresh
database, in one process run, so the ratios survive a noisy machine:

(a) raw psycopg ``COPY`` of equivalent rows (person, version, type, time, JSON content);
(b) plain ``eventsourcing``: one aggregate event per ``Application.save`` (one
    transaction each), the library's default PostgreSQL mode;
(c) ``Ledger.append_batch``: contract validation + dedupe + retraction rule + hash
    chain + index rows + the Merkle tree, one transaction per batch;
(d) the same with the Merkle tree's maintenance switched off (the recorder's
    ``maintain_tree``), to show what the tree costs.

(c) and (d) run ``--rounds`` times alternately (d, c, d, c, ...), each in a fresh
database, and the best of each counts. The last lines print c/a, c/b and c/d.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.database import ensure_database, library_env, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from domain.synthetic import generate_people


class Fact(Aggregate):
    """Baseline (b): an aggregate whose events carry the same JSON content."""

    def __init__(self, content: dict) -> None:
        self.contents = [content]

    @event("Reported")
    def report(self, content: dict) -> None:
        self.contents.append(content)


class Baseline(Application[uuid.UUID]):
    name = "Baseline"


def envelopes(count: int) -> list[dict]:
    out: list[dict] = []
    for person in generate_people(people=max(count // 5, 10), seed=11):
        out.extend(person)
        if len(out) >= count:
            break
    return out[:count]


def run_copy(url: str, events: list[dict]) -> float:
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE raw_events (person text, version int, type text,"
            " occurred_at timestamptz, content jsonb)"
        )
        versions: dict[str, int] = {}
        start = time.perf_counter()
        with conn.cursor().copy("COPY raw_events FROM STDIN") as copy:
            for e in events:
                versions[e["nhs_number"]] = versions.get(e["nhs_number"], 0) + 1
                copy.write_row(
                    (
                        e["nhs_number"],
                        versions[e["nhs_number"]],
                        e["type"],
                        e["occurred_at"],
                        json.dumps(e),
                    )
                )
        conn.commit()
        return time.perf_counter() - start


def run_library(url: str, events: list[dict]) -> float:
    app = Baseline(env=library_env(url))
    aggregates: dict[str, Fact] = {}
    start = time.perf_counter()
    for e in events:
        agg = aggregates.get(e["nhs_number"])
        if agg is None:
            agg = aggregates[e["nhs_number"]] = Fact(e)
        else:
            agg.report(e)
        app.save(agg)
    elapsed = time.perf_counter() - start
    app.close()
    return elapsed


def run_ledger(
    url: str, events: list[dict], batch: int, settings: Settings, tree: bool = True
) -> float:
    ledger = Ledger(url, settings)
    ledger.store.maintain_tree = tree
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        result = ledger.append_batch(events[i : i + batch])
        bad = [item for item in result.items if item.status != "recorded"]
        if bad:
            raise SystemExit(f"unexpected non-recorded items: {bad[:3]}")
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2, help="Runs of (c) and (d) each.")
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    events = envelopes(args.events)
    n = len(events)
    print(f"{n} events of {len({e['nhs_number'] for e in events})} people")
    rates: dict[str, float] = {}
    runs = [
        ("a COPY", lambda url: run_copy(url, events)),
        ("b eventsourcing one-per-save", lambda url: run_library(url, events)),
    ]
    for _ in range(args.rounds):
        runs.append(
            (
                "d ledger append_batch without the Merkle tree",
                lambda url: run_ledger(url, events, args.batch, settings, tree=False),
            )
        )
        runs.append(
            (
                "c ledger append_batch with the Merkle tree",
                lambda url: run_ledger(url, events, args.batch, settings),
            )
        )
    for label, run in runs:
        url = ensure_database(with_dbname(server, f"bench_append_{label[0]}"), fresh=True)
        elapsed = run(url)
        rates[label[0]] = max(rates.get(label[0], 0.0), n / elapsed)
        print(f"({label}): {n / elapsed:,.0f} events/s ({elapsed:.1f} s)", flush=True)
    print(f"best: c {rates['c']:,.0f} events/s, d {rates['d']:,.0f} events/s")
    print(
        f"ratios: c/a = {rates['c'] / rates['a']:.3f}, c/b = {rates['c'] / rates['b']:.2f},"
        f" c/d = {rates['c'] / rates['d']:.3f} (the tree's cost)"
    )


if __name__ == "__main__":
    main()
