"""Realistic load: concurrent publishers, Zipf-chosen people, latency percentiles, the
projections runner following, and a bare-INSERT baseline in the same run.

Run: ``.venv/bin/python bench/load.py [--seconds 10] [--publishers 1,4,16]
[--batches 1,10,500] [--modes bare,ledger,http,kafka,files]``

One fresh database (``--database``, default ``load_load``) on the configured server
(``CAREJOURNEY_DATABASE_URL``), ``carejourney projections run`` following the ledger the
whole time (bench/following.py samples its lag every 0.1 s). Each event names a person
drawn from ``--people`` (default 100,000) with Zipf-like weights 1/k^``--zipf`` (1.1),
so a few people are hot and most have one or two events, as with the open Event Store
Benchmark Suite's many small streams and a few hot ones (the run prints the share of
events the hottest 1% and 10% receive). Envelopes are synthetic ``ContactRecorded`` and
``CaseIdentified`` events (``domain.synthetic``) re-addressed to the chosen person with
a new event id.

For each number of publishers P in ``--publishers`` and each batch size B in
``--batches``, for ``--seconds`` each:

* ``bare``: the baseline, P threads each ``INSERT ... SELECT FROM unnest`` of B rows
  (event id primary key, NHS number, the envelope as jsonb) in one transaction per
  batch, into a plain table of the same database: what PostgreSQL itself does with the
  same rows and the same transactions, with no validation, identity, hash chain or tree;
* ``ledger``: P threads calling ``Ledger.append_batch`` of B envelopes in-process;
* ``http``: P concurrent clients (httpx, a separate process) each POSTing B-envelope
  batches to ``carejourney serve --workers 2`` and waiting for the outcome;

then for each P: ``kafka``: P producer threads send as fast as they can for
``--seconds`` to a 16-partition topic on a tansu broker started here, one ``carejourney
consume --assign`` records them (events/s from the first send to the last committed;
latency from each send to the event's ``recorded_at``, so it includes the time queued
behind the backlog the producers built); ``files``: P concurrent ``carejourney ingest
FILE`` processes of ``--file-events`` each (events/s over the wall time; latency: each
file's whole run).

Prints per configuration: events/s, append latency p50/p95/p99/p99.9 (per batch: the
time a publisher waits for its outcome), the runner's lag p99 in events and seconds
over the window, and the ratio events/s against ``bare`` at the same P and B.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import KEY, free_port, start_server  # noqa: E402
from bench.following import Following, Lag, percentile  # noqa: E402
from domain.database import ensure_database, resolve_url, with_dbname  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.nhs_number import make_nhs_number  # noqa: E402
from domain.settings import get_settings  # noqa: E402
from domain.synthetic import generate_people  # noqa: E402

TEMPLATE_TYPES = {"ContactRecorded", "CaseIdentified"}
# Events prepared per configuration, per second of --seconds, by batch size: more than
# this machine reaches (a publisher that runs out stops early; the rate stays valid).
PREPARED_PER_SECOND = {1: 1_500, 10: 6_000, 500: 30_000}


class People:
    """``count`` NHS numbers and Zipf-like cumulative weights over them."""

    def __init__(self, count: int, exponent: float, seed: int) -> None:
        numbers: list[str] = []
        prefix = 900_000_000 + seed * 1_000_003 % 50_000_000
        while len(numbers) < count:
            made = make_nhs_number(prefix)
            prefix += 1
            if made is not None:
                numbers.append(made)
        self.numbers = numbers
        total = 0.0
        self.cum: list[float] = []
        for k in range(1, count + 1):
            total += 1.0 / k**exponent
            self.cum.append(total)

    def pick(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.numbers, cum_weights=self.cum, k=k)

    def share_of_hottest(self, fraction: float) -> float:
        return self.cum[max(0, int(len(self.cum) * fraction) - 1)] / self.cum[-1]


class Envelopes:
    def __init__(self, people: People, seed: int) -> None:
        self.people = people
        self.rng = random.Random(seed)
        self.templates = [
            env
            for person in generate_people(people=200, seed=seed)
            for env in person
            if env["type"] in TEMPLATE_TYPES
        ]

    def batch(self, size: int) -> list[dict[str, Any]]:
        out = []
        for nhs in self.people.pick(self.rng, size):
            env = dict(self.rng.choice(self.templates))
            env["event_id"] = str(uuid.uuid4())
            env["nhs_number"] = nhs
            out.append(env)
        return out

    def batches(self, count: int, size: int) -> list[list[dict[str, Any]]]:
        return [self.batch(size) for _ in range(count)]


@dataclass
class Result:
    mode: str
    publishers: int
    batch: int
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    lag: list[Lag] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# -- in-process publishers (bare INSERT, Ledger.append_batch) ------------------------------


BARE_TABLE = """CREATE TABLE IF NOT EXISTS bench_bare_events (
    event_id uuid PRIMARY KEY, nhs_number text NOT NULL, envelope jsonb NOT NULL)"""


def threaded(
    publishers: int,
    queues: list[list[list[dict[str, Any]]]],
    seconds: float,
    make_sender: Any,
) -> tuple[int, float, list[float], str]:
    """P threads, each sending its own queue of batches until the deadline."""
    latencies: list[float] = []
    counts = [0] * publishers
    lock = threading.Lock()
    ran_out = threading.Event()
    start = time.perf_counter()
    deadline = start + seconds

    def work(i: int) -> None:
        send, close = make_sender()
        try:
            mine: list[float] = []
            for batch in queues[i]:
                if time.perf_counter() >= deadline:
                    break
                t0 = time.perf_counter()
                counts[i] += send(batch)
                mine.append(time.perf_counter() - t0)
            else:
                ran_out.set()
            with lock:
                latencies.extend(mine)
        finally:
            close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return (
        sum(counts),
        elapsed,
        latencies,
        "ran out of prepared batches" if ran_out.is_set() else "",
    )


def bare_sender(url: str) -> Any:
    def make() -> tuple[Any, Any]:
        conn = psycopg.connect(url)

        def send(batch: list[dict[str, Any]]) -> int:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO bench_bare_events SELECT * FROM"
                    " unnest(%s::uuid[], %s::text[], %s::jsonb[])",
                    (
                        [e["event_id"] for e in batch],
                        [e["nhs_number"] for e in batch],
                        [json.dumps(e) for e in batch],
                    ),
                )
            return len(batch)

        return send, conn.close

    return make


def ledger_sender(ledger: Ledger) -> Any:
    def make() -> tuple[Any, Any]:
        def send(batch: list[dict[str, Any]]) -> int:
            return ledger.append_batch(batch).counts()["recorded"]

        return send, lambda: None

    return make


# -- HTTP publishers (a separate process: the client's CPU is not the bench's) -------------


async def _post_all(
    base: str, queues: list[list[bytes]], seconds: float
) -> tuple[int, float, list[float], bool]:
    import httpx

    latencies: list[float] = []
    recorded = 0
    ran_out = False
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=len(queues) * 2, max_keepalive_connections=0)
    start = time.perf_counter()
    deadline = start + seconds
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as client:

        async def publisher(queue: list[bytes]) -> None:
            nonlocal recorded, ran_out
            for body in queue:
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                response = await client.post("/v1/events", content=body)
                latencies.append(time.perf_counter() - t0)
                if response.status_code == 200:
                    recorded += response.json()["counts"]["recorded"]
            ran_out = True

        await asyncio.gather(*(publisher(q) for q in queues))
    return recorded, time.perf_counter() - start, latencies, ran_out


def post_all(
    base: str, queues: list[list[bytes]], seconds: float
) -> tuple[int, float, list[float], bool]:
    return asyncio.run(_post_all(base, queues, seconds))


# -- Kafka ---------------------------------------------------------------------------------


def kafka_run(
    broker: Any,
    topic: str,
    url: str,
    queues: list[list[list[dict[str, Any]]]],
    seconds: float,
) -> tuple[int, float, list[float], str]:
    """P producer threads for ``seconds``; then until the consumer recorded them all."""
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    with psycopg.connect(url) as conn:
        before = int(
            conn.execute("SELECT coalesce(max(position), 0) FROM ledger_events").fetchone()[0]
        )
    start = time.time()
    deadline = time.perf_counter() + seconds

    def produce(queue: list[list[dict[str, Any]]]) -> None:
        producer = broker.producer()
        producer.config["linger_ms"] = 5
        mine: dict[str, float] = {}
        for batch in queue:
            if time.perf_counter() >= deadline:
                break
            for env in batch:
                mine[env["event_id"]] = time.time()
                producer.send(topic, key=env["nhs_number"].encode(), value=json.dumps(env).encode())
        producer.flush(120)
        producer.close(10)
        with lock:
            sent_at.update(mine)

    threads = [threading.Thread(target=produce, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(sent_at)
    wait_until = time.monotonic() + 600
    recorded: list[tuple[str, datetime]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < wait_until:
            n = int(
                conn.execute(
                    "SELECT count(*) FROM ledger_events WHERE position > %s", (before,)
                ).fetchone()[0]
            )
            if n >= total:
                break
            time.sleep(0.1)
        recorded = conn.execute(
            "SELECT event_id::text, recorded_at FROM ledger_events WHERE position > %s",
            (before,),
        ).fetchall()
    last = max((at for _, at in recorded), default=datetime.now(UTC))
    latencies = [at.timestamp() - sent_at[eid] for eid, at in recorded if eid in sent_at]
    note = "" if len(recorded) >= total else f"only {len(recorded)} of {total} recorded"
    return len(recorded), last.timestamp() - start, latencies, note


# -- files ---------------------------------------------------------------------------------


def files_run(url: str, paths: list[Path]) -> tuple[int, float, list[float], str]:
    env = dict(os.environ, CAREJOURNEY_DATABASE_URL=url)
    start = time.perf_counter()
    procs = [
        (
            time.perf_counter(),
            subprocess.Popen(
                [sys.executable, "-m", "cli.app", "ingest", str(p)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
        for p in paths
    ]
    durations = []
    failed = 0
    for t0, proc in procs:
        failed += proc.wait() != 0
        durations.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    events = sum(sum(1 for _ in p.open()) for p in paths)
    return events, elapsed, durations, f"{failed} ingest(s) failed" if failed else ""


# -- reporting -----------------------------------------------------------------------------


def line(r: Result, baseline: Result | None) -> str:
    ms = [percentile(r.latencies, p) * 1000 for p in (50, 95, 99, 99.9)]
    lag_events = percentile([float(s.events) for s in r.lag], 99)
    lag_seconds = percentile([s.seconds for s in r.lag], 99)
    ratio = f"{r.rate / baseline.rate:6.3f}" if baseline and baseline.rate else "     -"
    return (
        f"{r.mode:7} P={r.publishers:<3} B={r.batch:<4} {r.rate:9,.0f} ev/s  "
        f"p50 {ms[0]:8.1f}  p95 {ms[1]:8.1f}  p99 {ms[2]:8.1f}  p99.9 {ms[3]:8.1f} ms  "
        f"lag p99 {lag_events:8,.0f} ev {lag_seconds:6.2f} s  /bare {ratio}"
        + (f"  ({r.note})" if r.note else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--publishers", default="1,4,16")
    parser.add_argument("--batches", default="1,10,500")
    parser.add_argument("--modes", default="bare,ledger,http,kafka,files")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.1, help="exponent s of 1/k^s")
    parser.add_argument("--file-events", type=int, default=20_000, help="events per file")
    parser.add_argument("--kafka-batch", type=int, default=500, help="events per produce loop")
    parser.add_argument("--database", default="load_load")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    publishers = [int(x) for x in args.publishers.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    modes = args.modes.split(",")

    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, args.database), fresh=True)
    people = People(args.people, args.zipf, args.seed)
    make = Envelopes(people, args.seed)
    print(
        f"{args.people:,} people, Zipf s={args.zipf}: the hottest 1% get "
        f"{people.share_of_hottest(0.01):.0%} of events, the hottest 10% "
        f"{people.share_of_hottest(0.10):.0%}; {args.seconds:.0f} s per configuration; "
        f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        flush=True,
    )
    ledger = Ledger(url, settings)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BARE_TABLE)
    results: list[Result] = []
    bare: dict[tuple[int, int], Result] = {}
    spawn = get_context("spawn")
    http_server = None
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    tansu = None
    consumer = None
    try:
        with Following(url) as following:

            def record(r: Result) -> None:
                results.append(r)
                if r.mode == "bare":
                    bare[(r.publishers, r.batch)] = r
                print(line(r, bare.get((r.publishers, r.batch))), flush=True)

            if "http" in modes:
                http_server = start_server(url, port, tmp)
            for p in publishers:
                for b in batches:
                    count = max(1, int(PREPARED_PER_SECOND.get(b, 30_000) * args.seconds / b / p))
                    for mode in ("bare", "ledger", "http"):
                        if mode not in modes:
                            continue
                        queues = [make.batches(count, b) for _ in range(p)]
                        following.mark()
                        if mode == "bare":
                            n, s, lat, note = threaded(p, queues, args.seconds, bare_sender(url))
                        elif mode == "ledger":
                            n, s, lat, note = threaded(
                                p, queues, args.seconds, ledger_sender(ledger)
                            )
                        else:
                            bodies = [[json.dumps(x).encode() for x in q] for q in queues]
                            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                                n, s, lat, out = pool.submit(
                                    post_all, f"http://127.0.0.1:{port}", bodies, args.seconds
                                ).result()
                            note = "ran out of prepared batches" if out else ""
                        following.wait_caught_up()
                        record(Result(mode, p, b, n, s, lat, following.window(), note))
            if http_server is not None:
                http_server.terminate()
                http_server.wait(60)
                http_server = None
            if "kafka" in modes:
                from bench.ingest import start_tansu

                tansu, broker = start_tansu()
                topic = f"bench-load-{uuid.uuid4().hex[:8]}"
                broker.create_topics({topic: 16, f"{topic}.dlq": 1})
                env = dict(
                    os.environ,
                    CAREJOURNEY_DATABASE_URL=url,
                    KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                    CAREJOURNEY_DEAD_LETTER_TOPIC=f"{topic}.dlq",
                )
                if broker.api_version:
                    env["CAREJOURNEY_KAFKA_API_VERSION"] = ".".join(map(str, broker.api_version))
                consumer = subprocess.Popen(
                    [sys.executable, "-m", "cli.app", "consume", "--assign", "--topic", topic],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(3)
                for p in publishers:
                    # 6,000 events/s prepared: above what one consumer records here, so
                    # the producers build a backlog, but one that drains in seconds.
                    count = max(1, int(6_000 * args.seconds / args.kafka_batch / p))
                    queues = [make.batches(count, args.kafka_batch) for _ in range(p)]
                    following.mark()
                    n, s, lat, note = kafka_run(broker, topic, url, queues, args.seconds)
                    following.wait_caught_up()
                    record(
                        Result("kafka", p, args.kafka_batch, n, s, lat, following.window(), note)
                    )
            if "files" in modes:
                for p in publishers:
                    paths = []
                    for i in range(p):
                        path = tmp / f"load-{p}-{i}.ndjson"
                        with path.open("w") as handle:
                            for _ in range(args.file_events // 500):
                                for env in make.batch(500):
                                    handle.write(json.dumps(env) + "\n")
                        paths.append(path)
                    following.mark()
                    n, s, lat, note = files_run(url, paths)
                    following.wait_caught_up()
                    record(
                        Result("files", p, args.file_events, n, s, lat, following.window(), note)
                    )
    finally:
        if http_server is not None:
            http_server.terminate()
            http_server.wait(60)
        if consumer is not None:
            consumer.terminate()
            consumer.wait(60)
        if tansu is not None:
            tansu.terminate()
            tansu.wait(10)
        ledger.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"done: {sum(r.events for r in results if r.mode != 'bare'):,} ledger events; load "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )


if __name__ == "__main__":
    main()
