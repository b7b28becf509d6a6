"""Scale: a ledger of N events through the public commands, and what it costs per event.

Run: ``.venv/bin/python bench/scale.py --events 10000000`` (a fresh database named
``bench_scale`` on the configured server; point ``CAREJOURNEY_DATABASE_URL`` at one on
TCP, see bench/append.py).

Steps, each a ``carejourney`` process timed from outside unless said:

1. write N synthetic envelopes (``domain.synthetic``, about 15 per person) as NDJSON
   files of ``--file-events`` each, one at a time;
2. ``carejourney ingest FILE`` of each file (then deleted): load time and events/s;
3. bytes per event on disk: ``pg_total_relation_size`` (tables + indexes + TOAST) of
   every table in the schema, over the events recorded;
4. ``carejourney verify`` of the whole ledger (it shows a progress bar): time;
5. ``carejourney projections rebuild`` of every read model: time;
6. ``GET /healthz`` (the baseline), ``/v1/patients/{nhs}/coordinator`` and ``/journey``
   for random people through ``carejourney serve --workers 2`` (bench/api.py's server
   and httpx load generator, ``--http-seconds`` each): req/s, p50, p99;
7. ``carejourney measures`` for one year (2024, the cohort's first full year): time;
8. projection lag while ``Ledger.append_batch`` ingests 500-event batches at a steady
   ``--steady-rate`` (5,000 events/s) for ``--steady-seconds``, with ``carejourney
   projections run`` following (bench/following.py): the rate reached and lag p50/p99.

``--reuse`` skips 1-2 on a database already loaded; ``--load-only`` stops after 3;
``--skip verify,rebuild,...`` leaves steps out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import free_port, httpx_load, start_server
from bench.following import Following, percentile
from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people

ROOT = Path(__file__).resolve().parent.parent


def write_files(
    total: int, per_file: int, folder: Path, seed: int, skip: int = 0
) -> Iterator[Path]:
    """N envelopes in files of ``per_file``, each yielded when complete (the caller
    ingests and deletes it: 10 M envelopes are ~10 GB of NDJSON); people generated as
    needed (never all in memory at once)."""
    written = 0
    handle = None
    path = folder / "part.ndjson"
    people = generate_people(people=max(total // 10, 10), seed=seed)
    for person in people:
        for envelope in person:
            if skip:  # --resume: these were ingested by an earlier run
                skip -= 1
                written += 1
                continue
            if handle is None:
                path = folder / f"part-{written // per_file:04d}.ndjson"
                handle = path.open("w")
            handle.write(json.dumps(envelope) + "\n")
            written += 1
            if written % per_file == 0 or written >= total:
                handle.close()
                handle = None
                yield path
            if written >= total:
                return
    if handle is not None:
        handle.close()
        yield path


def uptime() -> str:
    """The load average, printed beside every figure (the machine is shared)."""
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def carejourney(url: str, *args: str) -> float:
    env = dict(os.environ, CAREJOURNEY_DATABASE_URL=url)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        msg = f"carejourney {' '.join(args)} failed: {done.stdout[-400:]} {done.stderr[-400:]}"
        raise SystemExit(msg)
    return elapsed


def analyse(url: str) -> None:
    """ANALYZE, as autovacuum would: the shared bench server runs with autovacuum off,
    and without statistics the append path's reads got plans (JIT-compiled, parallel)
    that made the 11th file of 250k load 8 times slower than the first."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def disk(url: str) -> tuple[int, int, dict[str, int]]:
    """(events recorded, total bytes, bytes by table)."""
    with psycopg.connect(url) as conn:
        events = conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0]
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')"
        ).fetchall()
    by_table = {name: int(size) for name, size in rows}
    return int(events), sum(by_table.values()), by_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--file-events", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--database", default="bench_scale", help="dropped and created")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database as loaded; skip the load"
    )
    parser.add_argument("--load-only", action="store_true", help="stop after the load")
    parser.add_argument(
        "--resume", action="store_true", help="keep the database and load the rest up to --events"
    )
    parser.add_argument("--skip", default="", help="steps to leave out: verify,rebuild,http,...")
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument(
        "--http-connections",
        default="1,8",
        help="concurrent clients: 1 shows the latency of a read, 8 the queueing of a load",
    )
    parser.add_argument("--steady-rate", type=int, default=5_000, help="events/s for step 8")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, args.database), fresh=not (args.reuse or args.resume))
    load = 0.0
    done = disk(url)[0] if args.resume else 0
    if not args.reuse:
        with tempfile.TemporaryDirectory() as tmp:
            files = -(-args.events // args.file_events)
            writing = time.perf_counter()
            for i, path in enumerate(
                write_files(args.events, args.file_events, Path(tmp), args.seed, done),
                start=done // args.file_events + 1,
            ):
                written = time.perf_counter() - writing
                load += carejourney(url, "ingest", str(path))
                path.unlink()
                analyse(url)
                print(
                    f"  file {i}/{files}: written in {written:.0f} s, ingested: {load:.0f} s"
                    f" so far ({uptime()})",
                    flush=True,
                )
                writing = time.perf_counter()
    events, total, by_table = disk(url)
    if args.load_only:
        loaded = events - done
        print(f"(1) load: {loaded:,} events in {load:.0f} s = {loaded / load:,.0f} events/s")
        return
    if load:
        print(f"(1) load: {events:,} events in {load:.0f} s = {events / load:,.0f} events/s")
    print(f"(2) disk: {total / 2**20:,.0f} MiB = {total / events:,.0f} bytes/event")
    for name, size in sorted(by_table.items(), key=lambda kv: -kv[1])[:8]:
        print(f"      {name}: {size / 2**20:,.1f} MiB ({size / events:,.0f} bytes/event)")
    skip = set(args.skip.split(","))
    if "verify" not in skip:
        verify = carejourney(url, "verify")
        # The peak of any child so far: verify's own when it runs first (--reuse).
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"(3) verify: {verify:.1f} s = {events / verify:,.0f} events/s, peak RSS of the"
            f" children so far {peak:,.0f} MiB ({uptime()})"
        )
    if "rebuild" not in skip:
        rebuild = carejourney(url, "projections", "rebuild")
        print(
            f"(4) projections rebuild: {rebuild:.1f} s = {events / rebuild:,.0f} events/s"
            f" ({uptime()})"
        )
        events, total, _ = disk(url)
        print(
            f"(5) disk with read models: {total / 2**20:,.0f} MiB = {total / events:,.0f}"
            " bytes/event"
        )
    if "http" not in skip:
        for connections in (int(c) for c in args.http_connections.split(",")):
            http_reads(url, args.http_seconds, connections)
    if "measures" not in skip:
        year = carejourney(
            url,
            "measures",
            "--from",
            "2024-01-01",
            "--to",
            "2024-12-31",
            "--format",
            "json",
            "--no-catch-up",
            "--allow-placeholder-key",
        )
        print(f"(7) measures for 2024 (one year, every person): {year:.1f} s ({uptime()})")
    if "steady" not in skip:
        steady(url, args.steady_rate, args.steady_seconds, args.seed, settings)


def http_reads(url: str, seconds: float, connections: int) -> None:
    """Step 6: coordinator and journey reads at this size, against /healthz."""
    with psycopg.connect(url) as conn:
        sample = [
            r[0]
            for r in conn.execute(
                "SELECT nhs_number FROM identity_register ORDER BY random() LIMIT 20000"
            )
        ]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spawn = get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        server = start_server(url, port, Path(tmp))
        try:
            rates = {}
            for name, paths in {
                "GET /healthz": ["/healthz"],
                "GET coordinator": [f"/v1/patients/{n}/coordinator" for n in sample],
                "GET journey": [f"/v1/patients/{n}/journey" for n in sample],
            }.items():
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    r = pool.submit(httpx_load, base, paths, [], connections, seconds).result()
                rates[name] = r["requests"] / r["seconds"]
                ratio = rates[name] / rates["GET /healthz"]
                print(
                    f"(6) {name:16} x{connections:<2} {rates[name]:8,.0f} req/s"
                    f"  p50 {r['p50'] * 1000:6.1f} ms"
                    f"  p99 {r['p99'] * 1000:6.1f} ms  /healthz {ratio:.3f}  {r['statuses']}"
                    f" ({len(sample):,} people sampled; {uptime()})",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(60)


def steady(url: str, rate: int, seconds: float, seed: int, settings: Any) -> None:
    """Step 8: a paced writer at ``rate`` events/s while the runner follows."""
    batch = 500
    # New synthetic people (about 15 events each) as services would deliver them: a
    # realistic feed. (Zipf-chosen people, as in bench/load.py, make a few people with
    # tens of thousands of events, and the runner refolds a touched person's history.)
    wanted = int(rate * seconds) + batch
    ledger = Ledger(url, settings)
    # People new to this ledger: the seed moves with its size, so a step run again on a
    # reused ledger does not resend the last run's people (they would be duplicates,
    # counted below, not events).
    drawn = seed + 1000 + ledger.head_position()
    people = list(generate_people(people=wanted // 12 + 10, seed=drawn))
    stream = delivery_order(people, drawn)[:wanted]
    batches = [stream[i : i + batch] for i in range(0, len(stream), batch)]
    try:
        with Following(url) as following:
            following.mark()
            start = time.perf_counter()
            sent = 0
            duplicates = 0
            late = 0
            for i, chunk in enumerate(batches):
                due = start + i * batch / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late += 1
                counts = ledger.append_batch(chunk).counts()
                sent += counts["recorded"]
                duplicates += counts["duplicate"]
                if time.perf_counter() - start >= seconds:
                    break
            elapsed = time.perf_counter() - start
            catch_up = following.wait_caught_up()
            lags = following.window()
    finally:
        ledger.close()
    events = [float(x.events) for x in lags]
    ages = [x.seconds for x in lags]
    print(
        f"(8) steady ingest: {sent:,} events in {elapsed:.0f} s = {sent / elapsed:,.0f} events/s"
        f" (asked {rate:,}; {late} of {i + 1} batches started late; {duplicates:,}"
        " duplicates); runner lag p50"
        f" {percentile(events, 50):,.0f} / p99 {percentile(events, 99):,.0f} events,"
        f" p50 {percentile(ages, 50):.2f} / p99 {percentile(ages, 99):.2f} s; caught up"
        f" {catch_up:.1f} s after the writer stopped ({uptime()})"
    )


if __name__ == "__main__":
    main()
