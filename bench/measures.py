"""Evaluation-measure report time against a bare read of the same rows.

Run: ``.venv/bin/python bench/measures.py [--people 5000] [--reuse]``

One PostgreSQL server (``CAREJOURNEY_DATABASE_URL`` if set, else the embedded one), one
database ``bench_measures_<people>``: the synthetic cohort (two years) appended in
batches of 500 and projected (``--reuse`` keeps a database already loaded). Then, for
the last full year of the cohort, best of three runs each:

a. baseline: ``SELECT *`` of every table the measures read, rows fetched as tuples;
b. ``measures.load``: the same rows in one REPEATABLE READ snapshot, as fold row types;
c. ``measures.compute`` of every measure, not split;
d. ``measures.compute`` split by organisation (the dashboard's second computation).

Prints each time, people per second for b+c, and the ratio b/a (the cost of building
typed rows over fetching them).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from itertools import islice
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import best
from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from projections import measures
from projections.measures.population import READS, read_query
from projections.runner import Runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(
        with_dbname(server, f"bench_measures_{args.people}"), fresh=not args.reuse
    )
    ledger = Ledger(url, settings)
    try:
        if ledger.head_position() == 0:
            envelopes = iter(
                delivery_order(list(generate_people(args.people, args.seed)), args.seed)
            )
            start = time.perf_counter()
            while chunk := list(islice(envelopes, 500)):
                ledger.append_batch(chunk)
            print(
                f"appended {ledger.head_position():,} events in {time.perf_counter() - start:.1f}s",
                flush=True,
            )
        runner = Runner.for_ledger(ledger)
        runner.migrate()
        runner.run_once()
        period = measures.Period.checked(date(2025, 1, 1), date(2025, 12, 31), settings.zone)
        with ledger.connection() as conn:

            def bare() -> int:
                with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                    return sum(
                        len(cur.execute(read_query(t, c, k), {"end": period.end}).fetchall())
                        for _, t, c, k in READS
                    )

            a, rows = best(3, bare)
            b, population = best(3, lambda: measures.load(conn, period))
        c, _ = best(3, lambda: measures.compute(population, period, settings))
        d, _ = best(3, lambda: measures.compute(population, period, settings, by="organisation"))
        people = len(population.people)
        print(f"{people:,} people, {rows:,} rows, ledger position {population.position:,}")
        print(f"a. bare read of the rows      {a:6.2f}s")
        print(f"b. load (typed, one snapshot) {b:6.2f}s   b/a = {b / a:.2f}")
        print(f"c. compute, not split         {c:6.2f}s")
        print(f"d. compute, by organisation   {d:6.2f}s")
        print(f"report (b+c): {people / (b + c):,.0f} people/s")
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
