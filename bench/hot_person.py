"""What one runner step costs when a hot person is in it (issue 16).

Run: ``.venv/bin/python bench/hot_person.py [--hot-events 17000] [--steps 4]
[--database hot_person]``

Loads (once: the database on the configured server, ``CAREJOURNEY_DATABASE_URL``, is
kept and reused) one person with ``--hot-events`` events, the synthetic
``ContactRecorded``/``CaseIdentified`` envelopes of bench/load.py with their occurred
times spread over two years, so each new one lands inside the history; the projections
are caught up. Then ``--steps`` times: appends 500 events drawn as bench/load.py draws
them (Zipf 1.1 over 100,000 people: the hot person is one of them, the first, and gets
about one in seven) and times ``Runner.step`` over them, in one process, so the
runner's kept streams (``log.Kept``) carry over from step to step as in
``carejourney projections run``. The first step of a run reads the hot stream whole.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import Envelopes, People  # noqa: E402
from domain.database import ensure_database, resolve_url, with_dbname  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.settings import get_settings  # noqa: E402
from projections import log  # noqa: E402
from projections.runner import Runner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hot-events", type=int, default=17_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--database", default="hot_person")
    args = parser.parse_args()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, args.database))
    ledger = Ledger(url, settings)
    people = People(100_000, 1.1, 16)
    envelopes = Envelopes(people, 16)
    runner = Runner.for_ledger(ledger, batch_size=20_000)
    runner.migrate()
    try:
        if ledger.head_position() < args.hot_events:
            for _ in range(0, args.hot_events, 500):
                batch = envelopes.batch(500)
                for envelope in batch:
                    envelope["nhs_number"] = people.numbers[0]
                ledger.append_batch(batch)
            runner.run_once()
            with runner.connect(autocommit=True) as conn:
                conn.execute("ANALYZE")
        with runner.connect(autocommit=True) as conn:
            print(f"ledger head {log.head(conn):,}; load {os.getloadavg()}", flush=True)
            for _ in range(args.steps):
                ledger.append_batch(envelopes.batch(500))
                t = time.perf_counter()
                step = runner.step(conn)
                took = time.perf_counter() - t
                assert step is not None
                print(
                    f"step {step.after:,} -> {step.upto:,}: {step.people} people, {took:.2f} s",
                    flush=True,
                )
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
