"""The projections runner following the ledger while a benchmark writes, and its lag.

``Following(url)`` starts ``carejourney projections run`` (the deployed process: it
catches up, then follows with LISTEN/NOTIFY) and a thread that every ``interval``
seconds reads the ledger head and every projection's position
(``projections.runner.status``) and, when behind, how long ago the oldest event not
yet applied was recorded. ``mark()`` starts a new window; ``window()`` returns its
samples. Lag is reported in events (head minus the slowest projection's position) and
in seconds (the age of the oldest unapplied event: what a coordinator's screen is
behind by).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from projections.runner import status  # noqa: E402


@dataclass(frozen=True, slots=True)
class Lag:
    events: int
    seconds: float


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of unsorted values (nan if none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Following:
    def __init__(self, url: str, interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self._samples: list[Lag] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Following:
        env = dict(os.environ, CAREJOURNEY_DATABASE_URL=self.url)
        self._log = Path(tempfile.gettempdir()) / f"bench-following-{os.getpid()}.log"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cli.app", "projections", "run", "--poll", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log.open("wb"),
        )
        deadline = time.monotonic() + 1800
        while self.now().events > 0 or not self._started():
            if self._proc.poll() is not None:
                raise SystemExit("carejourney projections run exited")
            if time.monotonic() > deadline:
                raise SystemExit("the projections did not catch up")
            time.sleep(0.5)
        self._thread.start()
        return self

    def _started(self) -> bool:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return bool(conn.execute("SELECT to_regclass('projection_positions')").fetchone()[0])

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def now(self, conn: psycopg.Connection[tuple[object, ...]] | None = None) -> Lag:
        if conn is None:
            with psycopg.connect(self.url, autocommit=True) as own:
                return self.now(own)
        rows = status(conn)
        behind = min(r["position"] for r in rows)
        events = max(r["lag"] for r in rows)
        if events == 0:
            return Lag(0, 0.0)
        row = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp() - recorded_at) FROM ledger_events"
            " WHERE position > %s ORDER BY position LIMIT 1",
            (behind,),
        ).fetchone()
        return Lag(events, float(row[0]) if row and row[0] is not None else 0.0)

    def _sample(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                lag = self.now(conn)
                with self._lock:
                    self._samples.append(lag)

    def mark(self) -> None:
        with self._lock:
            self._samples = []

    def window(self) -> list[Lag]:
        self.check()
        with self._lock:
            return list(self._samples)

    def check(self) -> None:
        """A runner that exited makes every lag after it meaningless: stop the bench."""
        if self._proc is not None and self._proc.poll() is not None:
            tail = self._log.read_text(errors="replace")[-2000:]
            msg = f"carejourney projections run exited ({self._proc.returncode}): {tail}"
            raise SystemExit(msg)

    def wait_caught_up(self, timeout: float = 600) -> float:
        """Seconds until the projections reach the head (after the writers stop)."""
        start = time.monotonic()
        while self.now().events > 0 and time.monotonic() - start < timeout:
            self.check()
            time.sleep(0.1)
        return time.monotonic() - start


def summary(samples: list[Lag]) -> str:
    if not samples:
        return "lag: no samples"
    events = [float(s.events) for s in samples]
    seconds = [s.seconds for s in samples]
    return (
        f"runner lag p50 {percentile(events, 50):,.0f} / p99 {percentile(events, 99):,.0f}"
        f" events, p50 {percentile(seconds, 50):.2f} / p99 {percentile(seconds, 99):.2f} s"
        f" ({len(samples)} samples)"
    )
