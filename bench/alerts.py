"""Commit-to-alert latency: from an admission's commit to its alert on the SSE stream and
on Kafka, p50/p99, under a steady ingest (docs/alerts.md).

In one process, on one database and one broker (``KAFKA_BOOTSTRAP_SERVERS``, else a tansu
started here, as bench/ingest.py does): a background thread appends synthetic envelopes
at ``--rate`` events/s; the projections runner follows the ledger (LISTEN/NOTIFY); the
HTTP API serves the SSE stream on a real port; ``alert_publisher`` publishes the alert
feed to Kafka. Every ``--every`` seconds a probe person (registered with coordinator
PROBE earlier) is admitted; the time its ``append_batch`` returns is the commit. Three
times are taken per probe: (a) the alert row in the read model (polled every 2 ms: the
floor every live path stands on, and the baseline), (b) the ``opened`` event on the SSE
stream, (c) the message on the alerts topic. Ratios are against (a).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from kafka import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import start_tansu

from api.app import create_app
from api.security import hash_key
from consumers.alerts_topic import alert_publisher
from consumers.broker import Broker, parse_api_version
from domain.database import ensure_database, resolve_url, with_dbname
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import generate_people
from projections.alerts import alert_id
from projections.runner import Runner

KEY = "cjk_bench_admin"
PROBE = {"id": "PROBE", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}


def nhs_number(index: int) -> str:
    """A valid NHS number (modulus 11) for probe ``index``."""
    n = 900_000_000 + index
    while True:
        digits = f"{n:09d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return digits + str(check)
        n += 1


def envelope(kind: str, nhs: str, at: datetime, data: dict[str, Any], **source: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "nhs_number": nhs,
        "occurred_at": at.isoformat(),
        "source": {
            "organisation": source.get("organisation", "A81001"),
            "system": "bench",
            "setting": source.get("setting", "primary_care"),
        },
        "data": data,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="probing time")
    parser.add_argument("--rate", type=int, default=500, help="background events/s")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between probes")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = get_settings()
    tansu = None
    if settings.kafka_bootstrap_servers:
        broker = Broker(
            settings.kafka_bootstrap_servers,
            parse_api_version(settings.kafka_api_version),
            client_id="bench",
        )
    else:
        tansu, broker = start_tansu()
    topic = f"bench.alerts.{os.getpid()}"
    broker.create_topics({topic: 4})
    server = resolve_url(settings.database_url, settings.data_dir)
    url = ensure_database(with_dbname(server, "bench_alerts"), fresh=True)
    keys = json.dumps([{"name": "bench", "role": "admin", "sha256": hash_key(KEY)}])
    settings = settings.model_copy(
        update={"database_url": url, "api_keys": keys, "alerts_topic": topic}
    )
    ledger = Ledger(url, settings)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(target: Any, *a: Any) -> None:
        t = threading.Thread(target=target, args=a, daemon=True)
        t.start()
        threads.append(t)

    runner = Runner.for_ledger(ledger, batch_size=5_000)
    runner.migrate()
    start(runner.follow, stop, 0.2)
    publisher = alert_publisher(url, broker, topic, batch=500)
    start(publisher.run, stop, 0.02)
    port = free_port()
    api = uvicorn.Server(
        uvicorn.Config(create_app(settings, ledger), port=port, log_level="warning")
    )
    start(api.run)
    while not api.started:
        time.sleep(0.05)

    # -- the steady background ingest -----------------------------------------------------
    background = (e for person in generate_people(people=10**6, seed=11) for e in person)
    ingested = [0]

    def ingest() -> None:
        chunk = max(1, args.rate // 20)
        while not stop.is_set():
            started = time.monotonic()
            batch = [next(background) for _ in range(chunk)]
            ledger.append_batch(batch)
            ingested[0] += len(batch)
            stop.wait(max(0.0, chunk / args.rate - (time.monotonic() - started)))

    start(ingest)

    # -- the three observers -----------------------------------------------------------------
    committed: dict[str, float] = {}
    row_seen: dict[str, float] = {}
    sse_seen: dict[str, float] = {}
    kafka_seen: dict[str, float] = {}

    def watch_rows() -> None:
        with ledger.connection() as conn:
            while not stop.is_set():
                waiting = [a for a in committed if a not in row_seen]
                if waiting:
                    found = conn.execute(
                        "SELECT alert_id::text AS a FROM alerts WHERE alert_id = ANY(%s::uuid[])",
                        (waiting,),
                    ).fetchall()
                    now = time.monotonic()
                    for r in found:
                        row_seen.setdefault(r["a"], now)
                time.sleep(0.002)

    def watch_sse() -> None:
        stream = f"http://127.0.0.1:{port}/v1/coordinators/PROBE/alerts/stream"
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(timeout=None) as http, http.stream("GET", stream, headers=headers) as r:
            event = None
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "opened":
                    body = json.loads(line.split(":", 1)[1])
                    if body.get("kind") == "admission":
                        sse_seen.setdefault(body["alert_id"], time.monotonic())

    def watch_kafka() -> None:
        consumer = broker.consumer(None, 500)
        parts = [TopicPartition(topic, p) for p in range(4)]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = time.monotonic()
                for record in records:
                    body = json.loads(record.value)
                    if body["kind"] == "admission" and body["change"] == "opened":
                        kafka_seen.setdefault(body["alert_id"], now)
        consumer.close()

    for watcher in (watch_rows, watch_sse, watch_kafka):
        start(watcher)

    # -- probes ------------------------------------------------------------------------------
    print(f"background ingest {args.rate} events/s; probing for {args.seconds:.0f} s ...")
    deadline = time.monotonic() + args.seconds
    index = 0
    while time.monotonic() < deadline:
        index += 1
        nhs = nhs_number(index)
        now = datetime.now(UTC)
        ledger.append_batch(
            [
                envelope(
                    "PatientRegistered", nhs, now - timedelta(hours=2), {"practice": "A81001"}
                ),
                envelope(
                    "CoordinatorAssigned",
                    nhs,
                    now - timedelta(hours=1),
                    {"coordinator": PROBE},
                    organisation="RYX01",
                    setting="community",
                ),
            ]
        )
        time.sleep(args.every / 2)
        admitted = envelope(
            "Admitted",
            nhs,
            datetime.now(UTC),
            {"encounter_id": f"P{index}", "hospital": "RXH01", "method": "emergency"},
            organisation="RXH01",
            setting="acute",
        )
        ledger.append_batch([admitted])
        committed[str(alert_id("admission", uuid.UUID(admitted["event_id"])))] = time.monotonic()
        time.sleep(args.every / 2)
    time.sleep(3)  # the last probes arrive
    stop.set()
    api.should_exit = True
    for t in threads:
        t.join(timeout=10)

    def latencies(seen: dict[str, float]) -> list[float]:
        return [(seen[a] - c) * 1000 for a, c in committed.items() if a in seen]

    rows, sse, kafka = latencies(row_seen), latencies(sse_seen), latencies(kafka_seen)
    print(f"{len(committed)} probes; background ingest {ingested[0]:,} events")
    base = pct(rows, 50) if rows else float("nan")
    base99 = pct(rows, 99) if rows else float("nan")
    for name, values in (
        ("(a) alert row in the read model", rows),
        ("(b) SSE stream", sse),
        ("(c) Kafka topic", kafka),
    ):
        if not values:
            print(f"{name}: none seen")
            continue
        p50, p99 = pct(values, 50), pct(values, 99)
        print(
            f"{name}: {len(values)}/{len(committed)} seen, p50 {p50:.0f} ms, p99 {p99:.0f} ms"
            f"  (p50 {p50 / base:.2f}x, p99 {p99 / base99:.2f}x of (a))"
        )
    ledger.close()
    if tansu is not None:
        tansu.kill()


if __name__ == "__main__":
    main()
