"""FHIR bulk export throughput against a bare read of the same rows.

Run: ``.venv/bin/python bench/fhir.py [--people 5000] [--reuse]``

One PostgreSQL server (``CAREJOURNEY_DATABASE_URL`` if set, else the embedded one), one
database ``bench_fhir_<people>``: the synthetic cohort (two years) appended in batches
of 500 (``--reuse`` keeps a database already loaded). Then, best of ``--runs`` (3) each:

a. baseline: the same rows the export reads (every person's stream, the ledger index
   joined to the stored events, one REPEATABLE READ snapshot), fetched and decoded to
   ``RecordedEvent`` (``projections.log.all_streams``) and nothing else;
b. the same read, each person folded (``fold.prepare``) and mapped to resources by
   ``projections.fhir.resources`` (every resource validated by its R4B model), not
   written;
c. the whole export (``projections.fhir.export.export``): b plus JSON serialisation and
   the NDJSON files, opt-out lookup and merged people.

Prints events/s for a, resources/s for b and c, and the ratios b/a and c/a in time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

# This script's own folder must not be on the path: it would shadow the ``fhir`` package
# (fhir.resources) with this file.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from psycopg import IsolationLevel

from bench.timing import best
from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from projections import fold, log
from projections.fhir.export import export
from projections.fhir.resources import Subject, person_resources
from projections.fold import FoldConfig
from projections.measures.privacy import pseudonym


def streams(url: str, each: Callable[[list[Any]], int]) -> tuple[int, int]:
    """Read every stream in one snapshot; ``each(events)`` returns a count to add."""
    events = counted = 0
    with log.connect(url) as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            head = log.head(conn)
            for stream in log.all_streams(conn, head, []):
                events += len(stream)
                counted += each(stream)
    return events, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs each")
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, f"bench_fhir_{args.people}"), fresh=not args.reuse)
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
    finally:
        ledger.close()
    config = FoldConfig.from_settings(settings)
    subject = Subject(patient_id=partial(pseudonym, key=settings.pseudonym_key), identifiers=False)

    def mapped(stream: list[Any]) -> int:
        person = fold.prepare(stream, stream[0].patient_id, config)
        return len(person_resources(person, subject))

    a, (events, _) = best(args.runs, lambda: streams(url, lambda s: 0))
    print(f"a. bare read + decode     {a:6.2f}s  {events / a:9,.0f} events/s", flush=True)
    b, (_, resources) = best(args.runs, lambda: streams(url, mapped))
    print(
        f"b. read + fold + map      {b:6.2f}s  {resources / b:9,.0f} resources/s"
        f"  b/a = {b / a:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        c, result = best(
            args.runs,
            lambda: export(
                url,
                Path(tmp),
                pseudonym_key=settings.pseudonym_key,
                config=config,
                loads=json.loads,
            ),
        )
    written = sum(result.counts.values())
    print(
        f"c. whole export (NDJSON)  {c:6.2f}s  {written / c:9,.0f} resources/s  c/a = {c / a:.1f}"
    )
    print(
        f"{len(result.people):,} people, {events:,} events, {written:,} resources "
        f"({', '.join(f'{k} {n:,}' for k, n in result.counts.items())})"
    )


if __name__ == "__main__":
    main()
