"""The MLLP listener over real loopback TCP, driven by python-hl7's own client
(``hl7.client.MLLPClient`` and the asyncio ``open_hl7_connection``), which nobody here
wrote: ACKs to the HL7 v2 standard, ACK only after commit, pipelining, every framing
fault, concurrent senders, PostgreSQL crashing mid-stream and a killed listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hl7
import psycopg
import pytest
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection

from consumers.adt import decode
from consumers.adt_ingest import migrate
from consumers.mllp import Listener
from domain.ledger import Ledger
from domain.settings import Settings
from tests.adt_messages import FACILITIES, adt
from tests.journeys import nhs
from tests.own_postgres import pg_ctl, restart

SB, EB = b"\x0b", b"\x1c\r"
ROOT = Path(__file__).resolve().parent.parent


def settings(**kwargs: Any) -> Settings:
    return Settings(adt_facilities=FACILITIES, **kwargs)


class Running:
    """A listener in a thread of its own, with its own event loop."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ready = threading.Event()
        self.port = 0
        self.listener = Listener(ledger, settings, "127.0.0.1", 0, on_listening=self._up)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "listener did not start"

    def _up(self, port: int) -> None:
        self.port = port
        self.ready.set()

    def _run(self) -> None:
        self.task = self.loop.create_task(self.listener.serve())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)

    @property
    def stats(self) -> Any:
        assert self.listener.committer is not None
        return self.listener.committer.stats


@contextlib.contextmanager
def listening(ledger: Ledger, config: Settings) -> Iterator[Running]:
    running = Running(ledger, config)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def mllp(database_url: str) -> Iterator[tuple[Running, Ledger]]:
    config = settings(mllp_idle_timeout_seconds=2)
    ledger = Ledger(database_url, config)
    migrate(ledger)
    with listening(ledger, config) as running:
        yield running, ledger
    ledger.close()


def ack_of(response: str | bytes) -> hl7.Message:
    text = response.decode() if isinstance(response, bytes) else response
    return hl7.parse(text.strip("\x0b\x1c\r\n"))


def code(ack: hl7.Message) -> str:
    return str(ack.segment("MSA")(1))


def events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
        assert row is not None
        return int(row[0])


def event_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT event_id FROM ledger_events")]


def message(i: int, trigger: str = "A01", **kwargs: Any) -> str:
    return adt(trigger, control=f"C{i}", nhs=nhs(i), encounter=f"V{i}", **kwargs)


def expected_id(text: str) -> str:
    return str(decode(text, settings()).envelope["event_id"])  # type: ignore[union-attr]


# -- the ACK ------------------------------------------------------------------------------


def test_recorded_message_gets_aa_built_to_the_standard(mllp: tuple[Running, Ledger]) -> None:
    running, ledger = mllp
    text = message(1)
    with MLLPClient("127.0.0.1", running.port) as client:
        ack = ack_of(client.send_message(text))
    msh = ack.segment("MSH")
    # MSH-3/4 are the message's MSH-5/6, MSH-5/6 its MSH-3/4.
    assert [str(msh(n)) for n in (3, 4, 5, 6)] == ["CAREJOURNEY", "NHS", "PAS", "RXH"]
    assert str(msh(9)) == "ACK^A01^ACK"
    assert str(msh(11)) == "P" and str(msh(12)) == "2.4"
    assert str(msh(10)) and str(msh(10)) != "C1"
    assert str(msh(7)).endswith("+0000")
    assert code(ack) == "AA" and str(ack.segment("MSA")(2)) == "C1"
    assert "ERR" not in str(ack)
    assert event_ids(ledger.database_url) == [expected_id(text)]


def test_resend_of_a_recorded_message_is_aa_and_records_nothing(
    mllp: tuple[Running, Ledger],
) -> None:
    running, ledger = mllp
    with MLLPClient("127.0.0.1", running.port) as client:
        first = ack_of(client.send_message(message(1)))
        again = ack_of(client.send_message(message(1)))
    assert code(first) == code(again) == "AA"
    assert events(ledger.database_url) == 1


def _reason_of(text: str, config: Settings) -> str:
    outcome = decode(text, config)
    return outcome.reason()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected", "err_code"),
    [
        (adt("A01", facility="XYZ"), "AE", "103"),  # unknown facility: content error
        (adt("A01", encounter=""), "AE", "101"),  # no visit number
        (adt("A05"), "AR", "201"),  # unsupported trigger
        (adt("A01", message_type="ORU"), "AR", "200"),  # not ADT
    ],
)
def test_refusals_answer_ae_or_ar_with_the_import_reason_in_err(
    mllp: tuple[Running, Ledger], text: str, expected: str, err_code: str
) -> None:
    running, ledger = mllp
    with MLLPClient("127.0.0.1", running.port) as client:
        ack = ack_of(client.send_message(text))
    assert code(ack) == expected
    assert str(ack.segment("MSA")(2)) == "M1"
    texts = [ack.unescape(str(err(8))) for err in ack.segments("ERR")]
    assert "; ".join(texts) == _reason_of(text, settings())
    assert str(ack.segments("ERR")[0](3)).startswith(err_code + "^")
    assert str(ack.segments("ERR")[0](4)) == "E"
    assert events(ledger.database_url) == 0


def test_unreadable_and_unsupported_version_are_ar(mllp: tuple[Running, Ledger]) -> None:
    running, _ = mllp
    v3 = adt("A01").replace("|P|2.4", "|P|3.0")
    with MLLPClient("127.0.0.1", running.port) as client:
        version = ack_of(client.send_message(v3))
        garbage = ack_of(client.send(SB + b"\x00\x01\xffnot hl7" + EB))
        # The connection is still good after both.
        ok = ack_of(client.send_message(message(5)))
    assert code(version) == "AR" and str(version.segment("MSA")(2)) == "M1"
    assert "MSH-12: unsupported HL7 version '3.0'" in version.unescape(
        str(version.segment("ERR")(8))
    )
    assert str(version.segment("MSH")(12)) == "3.0"
    assert code(garbage) == "AR" and str(garbage.segment("MSA")(2)) == ""
    assert code(ok) == "AA"


def test_ack_is_sent_only_after_commit(mllp: tuple[Running, Ledger]) -> None:
    """The ledger's write lock is held by this test: the message cannot commit, so no
    ACK may arrive; once the lock goes, the ACK comes, and at that very moment another
    connection already sees the event. Reversing the order in the listener fails here."""
    running, ledger = mllp
    url = ledger.database_url
    with MLLPClient("127.0.0.1", running.port) as client:
        client.send_message(message(0))  # warm the path (tables, pool)
        blocker = psycopg.connect(url)
        blocker.execute("LOCK TABLE journeys_events IN ACCESS EXCLUSIVE MODE")
        client.socket.settimeout(1.5)
        client.socket.sendall(SB + message(1).encode() + EB)
        with pytest.raises(TimeoutError):
            client.socket.recv(4096)  # no ACK while the transaction cannot commit
        assert events(url) == 1
        blocker.rollback()
        blocker.close()
        client.socket.settimeout(30)
        ack = ack_of(client.socket.recv(4096))
        seen = events(url)  # right as the AA is in hand
    assert code(ack) == "AA" and str(ack.segment("MSA")(2)) == "C1"
    assert seen == 2


def test_pipelined_messages_share_transactions_and_are_acked_in_order(
    mllp: tuple[Running, Ledger],
) -> None:
    running, ledger = mllp
    texts = [message(i) for i in range(120)]

    async def send_all() -> list[str]:
        reader, writer = await open_hl7_connection("127.0.0.1", running.port)
        for text in texts:
            writer.writemessage(hl7.parse(text))
        await writer.drain()
        acks = [str((await reader.readmessage()).segment("MSA")(2)) for _ in texts]
        writer.close()
        await writer.wait_closed()
        return acks

    controls = asyncio.run(send_all())
    assert controls == [f"C{i}" for i in range(120)]
    assert events(ledger.database_url) == 120
    assert running.stats.transactions < 120  # several per transaction
    with psycopg.connect(ledger.database_url) as conn:
        order = [str(r[0]) for r in conn.execute("SELECT event_id FROM ledger_events ORDER BY 1")]
        by_position = [
            str(r[0]) for r in conn.execute("SELECT event_id FROM ledger_events ORDER BY position")
        ]
    assert sorted(order) == sorted(expected_id(t) for t in texts)
    assert by_position == [expected_id(t) for t in texts]


def test_four_concurrent_senders(mllp: tuple[Running, Ledger]) -> None:
    running, ledger = mllp
    per = 40
    results: dict[int, list[str]] = {}

    def sender(n: int) -> None:
        with MLLPClient("127.0.0.1", running.port) as client:
            results[n] = [
                code(ack_of(client.send_message(message(n * per + i)))) for i in range(per)
            ]

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {n: set(codes) for n, codes in results.items()} == {n: {"AA"} for n in range(4)}
    assert sorted(event_ids(ledger.database_url)) == sorted(
        expected_id(message(i)) for i in range(4 * per)
    )
    assert running.stats.connections == 4


# -- framing faults -------------------------------------------------------------------------


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda: b"MSH|^~\\&|no start block" + EB, id="no-start-block"),
        pytest.param(lambda: SB + b"MSH|" + b"x" * (1_100_000) + EB, id="over-max-bytes"),
        pytest.param(lambda: bytes(range(256)) * 64, id="binary-garbage"),
        pytest.param(lambda: b"", id="silent-client"),
    ],
)
def test_framing_faults_close_only_their_own_connection(
    mllp: tuple[Running, Ledger], fault: Callable[[], bytes]
) -> None:
    running, ledger = mllp
    bad = _raw(running.port)
    data = fault()
    if data:
        bad.sendall(data)
    started = time.monotonic()
    # While the faulty connection is open, another one works.
    with MLLPClient("127.0.0.1", running.port) as other:
        assert code(ack_of(other.send_message(message(1)))) == "AA"
    # The faulty connection is closed by the server: at once, or after the idle timeout
    # (2 s here) for a client that never sends or never ends its message.
    bad.settimeout(15)
    leftover = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := bad.recv(65536):
            leftover += chunk
    bad.close()
    assert time.monotonic() - started < 12
    assert b"MSA|AA" not in leftover
    # The listener still takes new connections.
    with MLLPClient("127.0.0.1", running.port) as again:
        assert code(ack_of(again.send_message(message(2)))) == "AA"
    assert events(ledger.database_url) == 2
    assert running.stats.framing_faults + running.stats.timeouts == 1


def test_slow_client_times_out(mllp: tuple[Running, Ledger]) -> None:
    """A message trickled in slower than the idle timeout (2 s) is cut off unrecorded."""
    running, ledger = mllp
    bad = _raw(running.port)
    text = SB + message(1).encode() + EB
    started = time.monotonic()
    closed = False
    try:
        for i in range(0, len(text), 20):
            bad.sendall(text[i : i + 20])
            time.sleep(0.5)
            if time.monotonic() - started > 10:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        bad.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            closed = bad.recv(4096) == b""
    bad.close()
    assert closed
    assert running.stats.timeouts == 1
    assert events(ledger.database_url) == 0


# -- PostgreSQL down, listener killed ---------------------------------------------------------


def _send_until_aa(port: Callable[[], int], texts: list[str], log: list[str]) -> None:
    """A sender as interface engines behave: each message is resent (reconnecting as
    needed) until it is acknowledged AA; anything else is logged and retried."""
    client: MLLPClient | None = None
    for text in texts:
        while True:
            try:
                if client is None:
                    client = MLLPClient("127.0.0.1", port())
                    client.socket.settimeout(30)
                response = client.send_message(text)
                if not response:
                    raise ConnectionError("closed without an ACK")
                got = code(ack_of(response))
                log.append(got)
                if got == "AA":
                    break
            except OSError as exc:
                log.append(type(exc).__name__)
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.2)
    if client is not None:
        client.close()


@pytest.mark.slow  # restarts its own PostgreSQL
def test_postgres_crash_mid_stream_loses_and_doubles_nothing(
    own_postgres: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, server = own_postgres
    monkeypatch.setenv("POSTGRES_CONNECT_TIMEOUT", "1")  # read by eventsourcing's pool
    config = settings()
    ledger = Ledger(url, config)
    migrate(ledger)
    texts = [message(i) for i in range(600)]
    log: list[str] = []
    try:
        with listening(ledger, config) as running:
            sender = threading.Thread(  # daemon: a failed test must not hang pytest's exit
                target=_send_until_aa, args=(lambda: running.port, texts, log), daemon=True
            )
            sender.start()
            deadline = time.monotonic() + 120
            while log.count("AA") < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            pg_ctl(server, "-m", "immediate", "-w", "stop")  # a crash, not a clean stop
            while running.stats.failed_transactions == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2)
            restart(server)
            sender.join(240)
            assert not sender.is_alive()
            assert running.stats.failed_transactions >= 1
    finally:
        ledger.close()
    assert log.count("AA") == len(texts)
    assert any(entry != "AA" for entry in log)  # the outage was seen by the sender
    assert "AE" not in log and "AR" not in log
    ids = event_ids(url)
    assert len(ids) == len(set(ids)) == len(texts)
    assert set(ids) == {expected_id(t) for t in texts}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREJOURNEY_")}
    env |= {
        "CAREJOURNEY_DATABASE_URL": url,
        "CAREJOURNEY_ADT_FACILITIES": '{"RXH": "RXH01", "RYJ": "RYJ01"}',
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.app", "mllp", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


def _wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise AssertionError("listener did not come up")


@pytest.mark.slow
@pytest.mark.slow  # starts and kills the listener process
def test_sigkilled_listener_loses_and_doubles_nothing(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    log_file = tmp_path / "mllp.log"
    process = _spawn(database_url, port, log_file)
    _wait_listening(port)
    texts = [message(i) for i in range(400)]
    log: list[str] = []
    sender = threading.Thread(target=_send_until_aa, args=(lambda: port, texts, log), daemon=True)
    sender.start()
    try:
        for kill_at in (80, 220):
            deadline = time.monotonic() + 120
            while log.count("AA") < kill_at and time.monotonic() < deadline:
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            time.sleep(0.5)
            process = _spawn(database_url, port, log_file)
            _wait_listening(port)
        sender.join(240)
        assert not sender.is_alive()
    finally:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        if process.poll() is None:
            process.kill()
    assert log.count("AA") == len(texts)
    assert any(entry != "AA" for entry in log), log_file.read_text()
    ids = event_ids(database_url)
    assert len(ids) == len(set(ids)) == len(texts)
    assert set(ids) == {expected_id(t) for t in texts}


def test_no_identifier_in_the_listener_log(
    mllp: tuple[Running, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    running, _ = mllp
    caplog.set_level(logging.DEBUG, logger="consumers")
    with MLLPClient("127.0.0.1", running.port) as client:
        client.send_message(adt("A01", facility="XYZ", control="Z1", nhs=nhs(7)))
        client.send(b"junk" + EB)
    time.sleep(0.5)
    assert nhs(7) not in caplog.text and "XZ1" not in caplog.text
