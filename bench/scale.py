"""Scale: a ledger of N events through the public commands, and what it costs per event.

Run: ``.venv/bin/python bench/scale.py --events 10000000`` (a fresh database named
``bench_scale`` on the configured server; point ``CAREJOURNEY_DATABASE_URL`` at one on
TCP, see bench/append.py).

Steps, each a ``carejourney`` process timed from outside:

1. write N synthetic envelopes (``domain.synthetic``, about 15 per person) as NDJSON
   files of ``--file-events`` each;
2. ``carejourney ingest FILE`` of each file: load time and events/s;
3. bytes per event on disk: ``pg_total_relation_size`` (tables + indexes + TOAST) of
   every table in the schema, over the events recorded;
4. ``carejourney verify`` of the whole ledger (it shows a progress bar): time;
5. ``carejourney projections rebuild`` of every read model: time.

Not measured yet (issue 16 asks for them): coordinator and journey p50/p99 through
HTTP at that size, the year's measures, and projection lag at a steady 5,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.database import ensure_database, resolve_url, with_dbname
from domain.settings import get_settings
from domain.synthetic import generate_people

ROOT = Path(__file__).resolve().parent.parent


def write_files(total: int, per_file: int, folder: Path, seed: int) -> list[Path]:
    """N envelopes in files of ``per_file``; people generated as needed (never all in
    memory at once)."""
    files: list[Path] = []
    written = 0
    handle = None
    people = generate_people(people=max(total // 10, 10), seed=seed)
    for person in people:
        for envelope in person:
            if handle is None or written % per_file == 0:
                if handle is not None:
                    handle.close()
                files.append(folder / f"part-{len(files):04d}.ndjson")
                handle = files[-1].open("w")
            handle.write(json.dumps(envelope) + "\n")
            written += 1
            if written >= total:
                break
        if written >= total:
            break
    if handle is not None:
        handle.close()
    return files


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
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, args.database), fresh=not args.reuse)
    load = 0.0
    if not args.reuse:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            files = write_files(args.events, args.file_events, Path(tmp), args.seed)
            print(f"wrote {len(files)} files in {time.perf_counter() - started:.0f} s", flush=True)
            for i, path in enumerate(files, start=1):
                load += carejourney(url, "ingest", str(path))
                print(f"  ingested file {i}/{len(files)}: {load:.0f} s so far", flush=True)
    events, total, by_table = disk(url)
    if load:
        print(f"(1) load: {events:,} events in {load:.0f} s = {events / load:,.0f} events/s")
    print(f"(2) disk: {total / 2**20:,.0f} MiB = {total / events:,.0f} bytes/event")
    for name, size in sorted(by_table.items(), key=lambda kv: -kv[1])[:8]:
        print(f"      {name}: {size / 2**20:,.1f} MiB ({size / events:,.0f} bytes/event)")
    verify = carejourney(url, "verify")
    print(f"(3) verify: {verify:.1f} s = {events / verify:,.0f} events/s")
    rebuild = carejourney(url, "projections", "rebuild")
    print(f"(4) projections rebuild: {rebuild:.1f} s = {events / rebuild:,.0f} events/s")
    events, total, _ = disk(url)
    print(
        f"(5) disk with read models: {total / 2**20:,.0f} MiB = {total / events:,.0f} bytes/event"
    )


if __name__ == "__main__":
    main()
