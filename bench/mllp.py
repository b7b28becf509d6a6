"""HL7 v2 over MLLP: messages/s and send->ACK latency against the ledger's own append.

Run: ``.venv/bin/python bench/mllp.py [--messages 4000]``

The same generated ADT messages (A01, A02, A03 per person, UK-style PID-3 with the NHS
number) on the same PostgreSQL server (``CAREJOURNEY_DATABASE_URL``, else the embedded
one), each run in a fresh database, in one process run:

(a) ``Ledger.append_batch`` of the mapped envelopes, 500 per call: the strongest
    baseline, the ledger's own append of the same events (mapping not timed);
(b) ``append_messages``: the ADT import path (map + append), 500 messages per call;
(c) ``carejourney mllp`` (a subprocess) with 1 connection, lock-step: send, wait for
    the ACK, send the next (what most interface engines do);
(d) 1 connection, pipelined: up to ``--window`` messages in flight;
(e) 4 connections, lock-step, in parallel;
(f) 4 connections, pipelined.

Clients are python-hl7's (``MLLPClient``, ``open_hl7_connection``). Latency is from the
write of a message to the read of its ACK, p50 and p99. Every ACK must be ``AA``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import hl7
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.adt import Decoded, decode  # noqa: E402
from consumers.adt_ingest import append_messages, migrate  # noqa: E402
from domain.database import ensure_database, resolve_url, with_dbname  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.nhs_number import make_nhs_number  # noqa: E402
from domain.settings import Settings, get_settings  # noqa: E402

FACILITIES = '{"RXH": "RXH01"}'
CHUNK = 500


def numbers(count: int) -> list[str]:
    out: list[str] = []
    prefix = 999_100_000
    while len(out) < count:
        number = make_nhs_number(prefix)
        prefix += 1
        if number is not None:
            out.append(number)
    return out


def messages(count: int) -> list[str]:
    """A01, A02, A03 for each person, in that order, distinct control ids."""
    people = numbers(count // 3 + 1)
    out: list[str] = []
    for n, nhs in enumerate(people):
        for step, (trigger, pv1) in enumerate(
            (("A01", "WARD1^R1^B1|21"), ("A02", "WARD2^R1^B1|"), ("A03", "WARD2^R1^B1|"))
        ):
            day = f"202603{1 + n % 28:02d}{8 + step * 2:02d}0000"
            pv1_fields = ["PV1", "1", "I", *pv1.split("|")] + [""] * 32
            pv1_fields[6] = "WARD1^R1^B1" if trigger == "A02" else ""
            pv1_fields[19] = f"V{n}"
            pv1_fields[36] = "19" if trigger == "A03" else ""
            segments = [
                f"MSH|^~\\&|PAS|RXH|CAREJOURNEY|NHS|{day}||ADT^{trigger}^ADT_{trigger}"
                f"|B{n}-{step}|P|2.4",
                f"EVN|{trigger}|{day}||||{day}",
                f"PID|1||X{n}^^^RXH^MR~{nhs}^^^NHS^NH||DOE^JANE||19400101|F",
                "|".join(pv1_fields).rstrip("|"),
            ]
            out.append("\r".join(segments) + "\r")
    return out[:count]


def fresh(server: str, name: str) -> str:
    return ensure_database(with_dbname(server, f"bench_mllp_{name}"), fresh=True)


def run_append(url: str, envelopes: list[dict], settings: Settings) -> float:
    ledger = Ledger(url, settings)
    start = time.perf_counter()
    for i in range(0, len(envelopes), CHUNK):
        result = ledger.append_batch(envelopes[i : i + CHUNK])
        assert all(item.status == "recorded" for item in result.items)
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def run_import(url: str, texts: list[str], settings: Settings) -> float:
    ledger = Ledger(url, settings)
    migrate(ledger)
    start = time.perf_counter()
    for i in range(0, len(texts), CHUNK):
        results = append_messages(ledger, texts[i : i + CHUNK], settings)
        assert all(r.status == "recorded" for r in results)
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_listener(url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREJOURNEY_")}
    env |= {"CAREJOURNEY_DATABASE_URL": url, "CAREJOURNEY_ADT_FACILITIES": FACILITIES}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.app", "mllp", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the listener did not start")


def lockstep(port: int, texts: list[str], latencies: list[float]) -> None:
    with MLLPClient("127.0.0.1", port) as client:
        for text in texts:
            start = time.perf_counter()
            ack = client.send_message(text)
            latencies.append(time.perf_counter() - start)
            assert b"MSA|AA|" in ack, ack


def pipelined(port: int, texts: list[str], latencies: list[float], window: int) -> None:
    async def go() -> None:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        sent: list[float] = []
        slots = asyncio.Semaphore(window)

        async def send() -> None:
            for text in texts:
                await slots.acquire()
                sent.append(time.perf_counter())
                writer.writemessage(hl7.parse(text))
                await writer.drain()

        async def receive() -> None:
            for i in range(len(texts)):
                ack = await reader.readmessage()
                latencies.append(time.perf_counter() - sent[i])
                assert str(ack.segment("MSA")(1)) == "AA", str(ack)
                slots.release()

        await asyncio.gather(send(), receive())
        writer.close()
        await writer.wait_closed()

    asyncio.run(go())


def run_mllp(
    url: str, texts: list[str], connections: int, client: Callable[..., None], *extra: int
) -> tuple[float, list[float]]:
    process, port = start_listener(url)
    try:
        # Each connection sends whole people (A01..A03 in order), split across senders.
        per_person = [texts[i : i + 3] for i in range(0, len(texts), 3)]
        parts = [
            [m for person in per_person[i::connections] for m in person] for i in range(connections)
        ]
        latencies: list[list[float]] = [[] for _ in parts]
        threads = [
            threading.Thread(target=client, args=(port, part, lat, *extra))
            for part, lat in zip(parts, latencies, strict=True)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    return elapsed, [x for lat in latencies for x in lat]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4_000)
    parser.add_argument("--window", type=int, default=100, help="pipelined: most in flight")
    args = parser.parse_args()
    os.environ["CAREJOURNEY_ADT_FACILITIES"] = FACILITIES
    get_settings.cache_clear()
    settings = get_settings()
    server = resolve_url(settings.database_url, settings.data_dir)
    if not settings.database_url:
        os.environ["CAREJOURNEY_DATABASE_URL"] = server  # the listener uses this server
    texts = messages(args.messages)
    decoded = [decode(t, settings) for t in texts]
    envelopes = [d.envelope for d in decoded if isinstance(d, Decoded)]
    assert len(envelopes) == len(texts)
    n = len(texts)
    print(f"{n} ADT messages (A01/A02/A03) of {n // 3} people; load avg {os.getloadavg()[0]:.1f}")
    rates: dict[str, float] = {}
    elapsed = run_append(fresh(server, "a"), envelopes, settings)
    rates["a"] = n / elapsed
    print(f"(a) ledger append_batch of the envelopes, {CHUNK}/call: {rates['a']:,.0f} events/s")
    elapsed = run_import(fresh(server, "b"), texts, settings)
    rates["b"] = n / elapsed
    print(f"(b) adt import path (map + append), {CHUNK}/call: {rates['b']:,.0f} messages/s")
    for label, connections, client, extra in (
        ("c", 1, lockstep, ()),
        ("d", 1, pipelined, (args.window,)),
        ("e", 4, lockstep, ()),
        ("f", 4, pipelined, (args.window,)),
    ):
        elapsed, latencies = run_mllp(fresh(server, label), texts, connections, client, *extra)
        rates[label] = n / elapsed
        mode = "lock-step" if client is lockstep else f"pipelined (window {args.window})"
        print(
            f"({label}) MLLP, {connections} connection(s), {mode}: {rates[label]:,.0f} msg/s,"
            f" send->ACK p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms"
            f" (x{rates[label] / rates['a']:.2f} of a)",
            flush=True,
        )
    print("ratios to (a): " + ", ".join(f"{k}/a = {v / rates['a']:.3f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
