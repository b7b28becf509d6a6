"""HTTP API throughput and latency, against a trivial endpoint of the same app, in one run.

Run: ``.venv/bin/python bench/api.py [--events 1000000] [--seconds 15] [--connections 8]``

1. Loads ``--events`` synthetic events (default 1,000,000; the cohort is as many people
   as that takes) into a fresh database on the configured server
   (``CAREJOURNEY_DATABASE_URL``, else the embedded one) with ``Ledger.append_batch``
   (``--reuse --database NAME`` takes an already loaded ledger instead, e.g.
   bench/rebuild.py's ``bench_rebuild_1000000``), then brings every projection up to
   the head with the projection runner.
2. Starts ``carejourney serve --workers 2`` on loopback as a subprocess.
3. A load generator in a separate process measures, one after another, each for
   ``--seconds``: (a) ``GET /healthz`` (the baseline: same app, no database), (b) ``GET
   /v1/patients/{nhs}/coordinator`` and (c) ``GET /v1/patients/{nhs}/journey`` for people
   picked at random, (d) ``POST /v1/events`` with 500-event batches of new events,
   (e) ``POST /v1/events`` with one new envelope per request (16 clients).
   GETs use ``wrk`` (Debian package) when installed, else an async httpx client; the POSTs
   always use the httpx client (each batch is new and sent once), ``--post-connections``
   clients each sending one batch per connection (see ``_drive`` for why).
4. Prints req/s, p50 and p99 for each, b/a and c/a, events/s for (d), posts/s for (e).

Person reads go through everything a real read does: key check, NHS-number check and
identity look-up, the access-log write (one committed row per read), then the query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.security import Role, env_entry  # noqa: E402
from domain.database import ensure_database, resolve_url, with_dbname  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.settings import get_settings  # noqa: E402
from domain.synthetic import generate_people  # noqa: E402
from projections.runner import Runner  # noqa: E402

DATABASE = "carejourney_bench_api"
KEY = "cjk_bench_admin_key"
BATCH = 500
LOAD_CHUNK = 5_000


def envelopes(limit: int, seed: int) -> Iterator[dict[str, Any]]:
    """Synthetic envelopes person by person, at most ``limit`` of them."""
    people = max(1, limit // 10)
    while True:
        emitted = 0
        for person in generate_people(people=people, seed=seed):
            for env in person:
                yield env
                emitted += 1
                limit -= 1
                if limit == 0:
                    return
        seed += 1000  # more people than estimated were needed: another cohort
        if emitted == 0:
            return


def load(ledger: Ledger, events: int) -> tuple[list[str], float]:
    """Append ``events`` events; the NHS numbers of the people loaded, and events/s of
    ``Ledger.append_batch`` itself (the baseline for (d))."""
    nhs: set[str] = set()
    started = time.perf_counter()
    done = 0
    stream = envelopes(events, seed=11)
    while chunk := list(islice(stream, LOAD_CHUNK)):
        nhs.update(e["nhs_number"] for e in chunk)
        result = ledger.append_batch(chunk)
        done += result.counts()["recorded"]
        if done and done % 100_000 < LOAD_CHUNK:
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {done:,} events ({rate:,.0f}/s)", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"loaded {done:,} events of {len(nhs):,} people in {elapsed:.0f} s "
        f"({done / elapsed:,.0f} events/s)",
        flush=True,
    )
    return sorted(nhs), done / elapsed


def existing_people(url: str, events: int) -> list[str] | None:
    """The NHS numbers of an earlier run's database, if it holds enough events."""
    try:
        with psycopg.connect(url) as conn:
            n = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
            if n is None or n[0] < events:
                return None
            rows = conn.execute("SELECT nhs_number FROM identity_register").fetchall()
    except psycopg.Error:
        return None
    return sorted(r[0] for r in rows)


def post_batches(count: int) -> list[bytes]:
    """``count`` bodies of 500 new envelopes each (a fresh seed per run: new event ids, so
    a run on a reused database records them rather than finding duplicates)."""
    stream = envelopes(count * BATCH, seed=random.SystemRandom().randrange(10**6, 10**9))
    return [json.dumps(chunk).encode() for chunk in iter(lambda: list(islice(stream, BATCH)), [])]


def single_bodies(count: int) -> list[str]:
    """``count`` new envelopes, one JSON document each (for (e): one per request)."""
    stream = envelopes(count, seed=random.SystemRandom().randrange(10**6, 10**9))
    return [json.dumps(env) for env in stream]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, keys_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREJOURNEY_")}
    env.update(
        {
            "CAREJOURNEY_DATABASE_URL": url,
            "CAREJOURNEY_API_KEYS": f"[{env_entry(Role.ADMIN, (), 'bench', KEY)}]",
            "CAREJOURNEY_API_KEYS_FILE": str(keys_dir / "none.json"),
            "CAREJOURNEY_READY_MAX_LAG": str(10**12),
            # serve refuses the published placeholder; a bench run's reports are discarded
            "CAREJOURNEY_PSEUDONYM_KEY": secrets.token_hex(32),
        }
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.app",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                time.sleep(2)  # let the second worker finish starting too
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit("the server exited during start-up")
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not become ready")


# -- the load generator (runs in its own process) ------------------------------------------


async def _drive(
    base: str, paths: list[str], bodies: list[bytes], connections: int, seconds: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    recorded = 0
    deadline = time.perf_counter() + seconds
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    # POSTs go on a new connection each, as independent publishers' batches would: uvicorn's
    # workers share one listening socket and a worker's accept loop takes every pending
    # connection, so a handful of keep-alive connections opened together can all land on
    # one worker and leave the other idle (measured: one worker at 90% CPU, the other 0%).
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=0 if bodies else None
    )

    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            nonlocal recorded
            while time.perf_counter() < deadline:
                if bodies:
                    if not queue:
                        return
                    body = queue.pop()
                    t0 = time.perf_counter()
                    response = await client.post("/v1/events", content=body)
                    if response.status_code == 200:
                        recorded += response.json()["counts"]["recorded"]
                else:
                    t0 = time.perf_counter()
                    response = await client.get(random.choice(paths))
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "statuses": statuses,
        "p50": _pct(latencies, 50),
        "p99": _pct(latencies, 99),
        "recorded": recorded,
        "generator": "httpx",
    }


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def httpx_load(
    base: str, paths: list[str], bodies: list[bytes], connections: int, seconds: float
) -> dict[str, Any]:
    return asyncio.run(_drive(base, paths, bodies, connections, seconds))


WRK_SCRIPT = """
local lines = {}
for line in io.lines(os.getenv("BENCH_LINES")) do lines[#lines + 1] = line end
local post = os.getenv("BENCH_METHOD") == "POST"
local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")}
if post then headers["Content-Type"] = "application/json" end
local i = 0
request = function()
  if post then  -- each line a body, in order (one wrk thread: no body is sent twice)
    i = i % #lines + 1
    return wrk.format("POST", "/v1/events", headers, lines[i])
  end
  return wrk.format("GET", lines[math.random(#lines)], headers)
end
done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "non2xx": %d, "errors": %d, '
    .. '"p50": %f, "p99": %f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1e6, latency:percentile(99) / 1e6))
end
"""


def wrk_load(
    base: str,
    lines: list[str],
    connections: int,
    seconds: float,
    workdir: Path,
    method: str = "GET",
) -> dict[str, Any]:
    """GET random paths of ``lines``, or POST its lines (bodies) in order."""
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    listing = workdir / "lines.txt"
    listing.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "BENCH_LINES": str(listing), "BENCH_KEY": KEY, "BENCH_METHOD": method}
    threads = 1 if method == "POST" else min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), base],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["statuses"] = {"non-2xx": result.pop("non2xx"), "socket errors": result.pop("errors")}
    result["generator"] = "wrk"
    return result


# -- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load first")
    parser.add_argument("--seconds", type=float, default=15.0, help="per measurement")
    parser.add_argument("--connections", type=int, default=8, help="concurrent GET clients")
    parser.add_argument("--post-connections", type=int, default=4, help="concurrent POST clients")
    parser.add_argument(
        "--post-batches",
        type=int,
        default=400,
        help="500-event batches prepared for (d) (a cap on its run)",
    )
    parser.add_argument(
        "--single-connections",
        type=int,
        default=16,
        help="concurrent clients posting one envelope per request (e)",
    )
    parser.add_argument(
        "--single-bodies",
        type=int,
        default=60_000,
        help="single envelopes prepared for (e) (wrk sends them in order)",
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument(
        "--database",
        default=DATABASE,
        help="database name on the server (e.g. bench/rebuild.py's "
        "bench_rebuild_1000000, with --reuse, to skip the load)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the bench database of an earlier run if it already holds "
        "at least --events events (skips the load)",
    )
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))

    settings = get_settings()
    server_url = resolve_url(settings.database_url, settings.data_dir)
    url = with_dbname(server_url, args.database)
    people = existing_people(url, args.events) if args.reuse else None
    direct_rate = None
    if people is None:
        url = ensure_database(with_dbname(server_url, args.database), fresh=True)
        ledger = Ledger(url, settings)
        people, direct_rate = load(ledger, args.events)
    else:
        ledger = Ledger(url, settings)
        print(
            f"reusing {args.database}: {ledger.head_position():,} positions, "
            f"{len(people):,} people",
            flush=True,
        )
    started = time.perf_counter()
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    runner.run_once()
    print(f"projections caught up in {time.perf_counter() - started:.0f} s", flush=True)
    head = ledger.head_position()
    ledger.close()
    bodies = post_batches(args.post_batches)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        server = start_server(url, port, workdir)
        results: dict[str, dict[str, Any]] = {}
        try:
            sample = random.Random(5).sample(people, min(len(people), 20_000))
            scenarios = {
                "a GET /healthz": ["/healthz"],
                "b GET coordinator": [f"/v1/patients/{n}/coordinator" for n in sample],
                "c GET journey": [f"/v1/patients/{n}/journey" for n in sample],
            }
            spawn = get_context("spawn")
            for name, paths in scenarios.items():
                if use_wrk:
                    results[name] = wrk_load(base, paths, args.connections, args.seconds, workdir)
                else:
                    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                        results[name] = pool.submit(
                            httpx_load, base, paths, [], args.connections, args.seconds
                        ).result()
                _report(name, results[name])
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                results["d POST /v1/events"] = pool.submit(
                    httpx_load, base, [], bodies, args.post_connections, args.seconds
                ).result()
            _report("d POST /v1/events", results["d POST /v1/events"])
            singles = single_bodies(args.single_bodies)
            if use_wrk:
                results["e POST one envelope"] = wrk_load(
                    base, singles, args.single_connections, args.seconds, workdir, "POST"
                )
            else:
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    results["e POST one envelope"] = pool.submit(
                        httpx_load,
                        base,
                        [],
                        [b.encode() for b in singles],
                        args.single_connections,
                        args.seconds,
                    ).result()
            _report("e POST one envelope", results["e POST one envelope"])
        finally:
            server.terminate()
            server.wait(60)

    a, b, c, d, e = (results[k] for k in results)
    rate = {k: v["requests"] / v["seconds"] for k, v in results.items()}
    print()
    print(
        f"ledger: {head:,} positions, {len(people):,} people; server: 2 uvicorn workers on "
        f"loopback; GETs: {a['generator']} with {args.connections} connections, "
        f"{args.seconds:.0f} s each"
    )
    print(
        f"b/a = {rate['b GET coordinator'] / rate['a GET /healthz']:.3f} "
        f"(req/s), p99 b = {b['p99'] * 1000:.1f} ms (target <= 20 ms)"
    )
    print(
        f"c/a = {rate['c GET journey'] / rate['a GET /healthz']:.3f} "
        f"(req/s), p99 c = {c['p99'] * 1000:.1f} ms (target <= 20 ms)"
    )
    events_per_s = d["recorded"] / d["seconds"]
    print(
        f"d: {events_per_s:,.0f} events/s recorded in 500-event batches "
        f"({args.post_connections} clients; target >= 10,000 events/s)"
    )
    print(
        f"e: {e['requests'] / e['seconds']:,.0f} single-envelope POSTs/s "
        f"({args.single_connections} clients, {e['generator']}; each waits for its own "
        f"outcome, envelopes posted together share a transaction)"
    )
    if direct_rate is not None:
        print(
            f"d / Ledger.append_batch direct (5,000-event batches, same run) = "
            f"{events_per_s / direct_rate:.2f}"
        )


def _report(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name:22} {r['requests'] / r['seconds']:9,.0f} req/s   p50 {r['p50'] * 1000:7.2f} ms"
        f"   p99 {r['p99'] * 1000:7.2f} ms   ({r['generator']}; {r['statuses']})",
        flush=True,
    )


if __name__ == "__main__":
    main()
