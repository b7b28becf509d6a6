"""Projection rebuild throughput against bare log decoding, and read latency.

Run: ``.venv/bin/python bench/rebuild.py [--events 1000000] [--people N] [--reuse]``

One run, one PostgreSQL server (``CAREJOURNEY_DATABASE_URL`` if set, else the embedded
one), one database ``bench_rebuild_<events>``:

0. generate ``--events`` ledger events of at least ``--people`` people (default: one
   person per ten events, at least 100,000 at the full size) with ``domain.synthetic``:
   each person's journey is cut to an occurrence-order prefix so the total is exact,
   delivered in the synthetic feed's order, appended with ``Ledger.append_batch``
   (``--reuse`` keeps a database already loaded with the same size);
1. (a) bare read + decode of the whole notification log in ledger order: the same
   server-side cursor and decoder the rebuild uses, into ``RecordedEvent`` s, nothing
   else (and, for context, ``Ledger.read_log`` through the library's mapper on a slice);
2. (b) rebuild of every projection: one pass over everyone's streams, folds, COPY into
   new tables, indexes, swap (``projections/rebuild.py``);
3. p50/p99 latency of the current-coordinator and timeline SQL for 1,000 random people
   (direct SQL, prepared, one connection).

Prints both rates, the ratio b/a and the latencies. Targets (issue 3): b >= 50,000
events/s and b/a >= 0.6; p99 <= 20 ms for both queries.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from projections import log
from projections.rebuild import rebuild
from projections.runner import Runner

CURRENT = "SELECT * FROM coordination_status WHERE patient_id = %s"
TIMELINE = "SELECT * FROM journey_timeline WHERE patient_id = %s ORDER BY seq"


def cohort(events: int, people: int, seed: int) -> list[dict[str, Any]]:
    """Exactly ``events`` envelopes of ``people`` people: each journey cut to a prefix
    (in occurrence order, so retractions and cancels still follow their targets)."""
    journeys = [
        sorted(p, key=lambda e: e["occurred_at"]) for p in generate_people(people=people, seed=seed)
    ]
    lengths = sorted(len(j) for j in journeys)
    if sum(lengths) < events:
        raise SystemExit(f"{people} people make only {sum(lengths)} events; use more people")
    lo, hi = 1, lengths[-1]
    while lo < hi:  # the smallest cap that gives enough events
        cap = (lo + hi) // 2
        if sum(min(n, cap) for n in lengths) >= events:
            hi = cap
        else:
            lo = cap + 1
    cut = [j[:lo] for j in journeys]
    extra = sum(len(j) for j in cut) - events
    for j in cut:  # trim the surplus one event at a time from the longest prefixes
        if extra <= 0:
            break
        if len(j) == lo and len(j) > 1:
            j.pop()
            extra -= 1
    return delivery_order(cut, seed)


def load(ledger: Ledger, envelopes: list[dict[str, Any]], batch: int) -> float:
    start = time.perf_counter()
    done = 0
    it = iter(envelopes)
    while chunk := list(islice(it, batch)):
        result = ledger.append_batch(chunk)
        bad = [i for i in result.items if i.status in ("rejected", "conflict")]
        if bad:
            raise SystemExit(f"unexpected refusals: {[i.as_dict() for i in bad[:3]]}")
        done += len(chunk)
        if done % (batch * 20) == 0:
            print(f"  appended {done:,}", flush=True)
    return time.perf_counter() - start


def bare_decode(runner: Runner) -> tuple[int, float]:
    with runner.connect() as conn:
        head = log.head(conn)
        start = time.perf_counter()
        n = sum(1 for _ in log.read_log(conn, 0, head, runner.loads))
        elapsed = time.perf_counter() - start
        conn.rollback()
    return n, elapsed


def library_decode(ledger: Ledger, limit: int) -> tuple[int, float]:
    start = time.perf_counter()
    n, after = 0, 0
    while n < limit:
        events = ledger.read_log(after, 5_000)
        if not events:
            break
        n += len(events)
        after = events[-1].position
    return n, time.perf_counter() - start


def latencies(url: str, people: list[Any], query: str) -> list[float]:
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for patient in people[:20]:  # warm the plan cache (prepared statements)
            conn.execute(query, (patient,), prepare=True).fetchall()
        for patient in people:
            start = time.perf_counter()
            conn.execute(query, (patient,), prepare=True).fetchall()
            out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--people", type=int, default=None, help="default: events / 10 (100,000 at 1M events)"
    )
    parser.add_argument("--batch", type=int, default=2_000, help="events per append")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="rebuild processes (default: the runner's, min(2, cores))",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep an already loaded bench database of this size"
    )
    args = parser.parse_args()
    people = args.people or max(1, args.events // 10)
    # Loading: under a busy machine a 2,000-event append can sit more than the library's
    # default 5 s between statements of its transaction (hashing); allow a minute.
    os.environ.setdefault("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "60")
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, f"bench_rebuild_{args.events}"), fresh=not args.reuse)
    ledger = Ledger(url, settings)
    try:
        if ledger.head_position() == 0:
            t = time.perf_counter()
            envelopes = cohort(args.events, people, args.seed)
            print(
                f"generated {len(envelopes):,} events of {people:,} people "
                f"in {time.perf_counter() - t:.1f}s",
                flush=True,
            )
            took = load(ledger, envelopes, args.batch)
            del envelopes
            print(f"loaded in {took:.1f}s ({args.events / took:,.0f} events/s)", flush=True)
            with ledger.connection() as conn:
                conn.execute("VACUUM ANALYZE ledger_events")
                conn.execute("VACUUM ANALYZE journeys_events")
        events, persons = ledger.head_position(), ledger.people()
        print(f"ledger: head position {events:,}, {persons:,} people")
        runner = Runner.for_ledger(ledger, workers=args.workers)
        runner.migrate()
        bare_decode(runner)  # warm the cache for both measurements alike
        n, a_seconds = bare_decode(runner)
        a = n / a_seconds
        print(f"(a) bare read + decode: {a:,.0f} events/s ({n:,} in {a_seconds:.1f}s)", flush=True)
        m, lib_seconds = library_decode(ledger, min(n, 100_000))
        print(
            f"    for context, Ledger.read_log (library mapper): {m / lib_seconds:,.0f}"
            f" events/s on the first {m:,}",
            flush=True,
        )
        report = rebuild(runner)
        assert report is not None
        b = report.events / report.seconds
        print(
            f"(b) rebuild of all projections ({', '.join(report.names)}; "
            f"{runner.workers} process{'es' if runner.workers > 1 else ''}): "
            f"{b:,.0f} events/s ({report.events:,} events of {report.people:,} people "
            f"in {report.seconds:.1f}s)"
        )
        print("    phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.phases.items()))
        print(f"ratio b/a = {b / a:.2f}")
        with ledger.connection() as conn:
            everyone = [
                r["patient_id"] for r in conn.execute("SELECT patient_id FROM coordination_status")
            ]
        sample = random.Random(args.seed).sample(everyone, min(1_000, len(everyone)))
        for label, query in (("current coordinator", CURRENT), ("timeline", TIMELINE)):
            ms = latencies(url, sample, query)
            print(
                f"{label}: p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms over {len(ms)} people"
            )
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
