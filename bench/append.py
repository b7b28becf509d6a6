"""Append throughput: raw COPY vs plain eventsourcing vs the ledger's validated append.

Run: ``.venv/bin/python bench/append.py [--events 100000] [--batch 2000]``

Every run uses the same generated envelopes on the same PostgreSQL server (the
configured ``CAREJOURNEY_DATABASE_URL``, else the embedded one), each in a fresh
database (``bench_append_<path>``, dropped when the run ends), in one process run, so
the ratios survive a noisy machine:

(a) raw psycopg ``COPY`` of equivalent rows (person, version, type, time, JSON content);
(b) plain ``eventsourcing``, its best batch path: many aggregates' new events in one
    ``Application.save(*aggregates)`` call (one transaction), ``--batch`` events per
    call: the strongest baseline the library offers;
(c) ``Ledger.append_batch`` in this process: contract validation + dedupe +
    retraction rule + hash chain + index rows + the Merkle tree, one transaction per
    batch; (c0) the same with the Merkle tree's maintenance switched off (the recorder's
    ``maintain_tree``), to show what the tree costs (c/c0);
(d) ``carejourney ingest FILE`` as a whole process (start-up, reading the NDJSON file,
    the appends, the report) on the same envelopes, timed from outside.

An extra line (b1) times the library's slowest common use, one event per ``save``,
on the first ``--one-per-save`` events (default 10,000), for reference only.
The last lines print c/a, c/b, d/a and d/b (b = the best batch path). ``--rounds N``
runs the chosen paths alternately N times and takes the best of each (on a shared
machine single runs of one path moved by a factor of two with the others' load).

Point ``CAREJOURNEY_DATABASE_URL`` at a server over TCP (e.g.
``postgresql://postgres@127.0.0.1:5432/bench``): over the embedded server's Unix socket,
(b) at 2,000 events per save hangs in psycopg's pipeline mode (the statement-size hang
docs/kafka.md describes), which the ledger's own recorder no longer uses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.database import ensure_database, library_env, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from domain.synthetic import generate_people

ROOT = Path(__file__).resolve().parent.parent


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


def run_library_batch(url: str, events: list[dict], batch: int) -> float:
    """(b): ``batch`` events per ``save``, over as many aggregates as they touch."""
    app = Baseline(env=library_env(url))
    aggregates: dict[str, Fact] = {}
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        touched: dict[str, Fact] = {}
        for e in events[i : i + batch]:
            agg = aggregates.get(e["nhs_number"])
            if agg is None:
                agg = aggregates[e["nhs_number"]] = Fact(e)
            else:
                agg.report(e)
            touched[e["nhs_number"]] = agg
        app.save(*touched.values())
    elapsed = time.perf_counter() - start
    app.close()
    return elapsed


def run_library_one(url: str, events: list[dict]) -> float:
    """(b1): one event per ``save`` (one transaction each)."""
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


def run_ingest(url: str, events: list[dict]) -> float:
    """(d): ``carejourney ingest FILE`` in its own process, wall clock."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "envelopes.ndjson"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        env = dict(os.environ, CAREJOURNEY_DATABASE_URL=url)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cli.app", "ingest", str(path)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"carejourney ingest failed ({done.returncode}): {done.stdout[-500:]}")
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
    parser.add_argument("--one-per-save", type=int, default=10_000)
    parser.add_argument("--skip", default="", help="labels to leave out, e.g. b1")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the paths alternately this many times; best counts",
    )
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    events = envelopes(args.events)
    n = len(events)
    print(f"{n} events of {len({e['nhs_number'] for e in events})} people; batch {args.batch}")
    few = events[: args.one_per_save]
    runs = (
        ("a", "COPY", n, lambda url: run_copy(url, events)),
        (
            "b",
            "eventsourcing, batch save",
            n,
            lambda url: run_library_batch(url, events, args.batch),
        ),
        ("b1", "eventsourcing, one per save", len(few), lambda url: run_library_one(url, few)),
        (
            "c0",
            "ledger append_batch without the Merkle tree",
            n,
            lambda url: run_ledger(url, events, args.batch, settings, tree=False),
        ),
        (
            "c",
            "ledger append_batch with the Merkle tree",
            n,
            lambda url: run_ledger(url, events, args.batch, settings),
        ),
        ("d", "carejourney ingest FILE", n, lambda url: run_ingest(url, events)),
    )
    skip = set(args.skip.split(",")) - {""}
    chosen = [r for r in runs if r[0] not in skip]
    every: dict[str, list[float]] = {}
    scratch = [with_dbname(server, f"bench_append_{key}") for key, *_ in chosen]
    try:
        for _ in range(args.rounds):  # the paths alternate, so the load moves under all alike
            for (key, label, count, run), name in zip(chosen, scratch, strict=True):
                elapsed = run(ensure_database(name, fresh=True))
                every.setdefault(key, []).append(count / elapsed)
                print(
                    f"({key}) {label}: {count / elapsed:,.0f} events/s"
                    f" ({count} in {elapsed:.1f} s)",
                    flush=True,
                )
    finally:  # the scratch databases go with the run, whatever ended it
        with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as conn:
            for name in scratch:
                dbname = conninfo_to_dict(name)["dbname"]
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
    rates = {key: max(found) for key, found in every.items()}  # best of the rounds
    if args.rounds > 1:
        for key, found in every.items():
            runs_text = "  ".join(f"{r:,.0f}" for r in found)
            print(f"({key}) best of {args.rounds}: {rates[key]:,.0f} events/s (runs: {runs_text})")
    if "c" in rates and "c0" in rates:
        print(f"tree cost: c/c0 = {rates['c'] / rates['c0']:.3f}")
    for top in ("c", "d"):
        if top in rates and "a" in rates and "b" in rates:
            print(
                f"ratios: {top}/a = {rates[top] / rates['a']:.3f}, "
                f"{top}/b = {rates[top] / rates['b']:.2f}"
            )


if __name__ == "__main__":
    main()
