"""Publish-body parsing: the API's strict JSON (duplicate keys refused) against
pydantic-core's parser, the fastest the API could use instead.

Run: ``.venv/bin/python bench/strict_json.py [--envelopes 500] [--rounds 200]``

The body is a batch of synthetic envelopes as ``POST /v1/events`` receives it. Prints
the best of five timings of each parser, the ratio, and the cost per envelope, so the
price of refusing duplicate keys (``api/routes/events.py``, ``strict_json``) is known.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import pydantic_core

from api.routes.events import strict_json
from domain.synthetic import delivery_order, generate_people


def best(parse: Callable[[bytes], Any], body: bytes, rounds: int) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            parse(body)
        times.append((time.perf_counter() - started) / rounds)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envelopes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    people = max(10, args.envelopes // 10)
    items = delivery_order(list(generate_people(people=people, seed=1)), 1)[: args.envelopes]
    body = json.dumps(items).encode()
    baseline = best(pydantic_core.from_json, body, args.rounds)
    strict = best(strict_json, body, args.rounds)
    print(f"{len(items)} envelopes, {len(body):,} bytes per body")
    print(f"a. pydantic_core.from_json (baseline): {baseline * 1e3:.2f} ms/body")
    print(f"b. strict_json (duplicate keys refused): {strict * 1e3:.2f} ms/body")
    print(
        f"b/a = {strict / baseline:.2f}x; +{(strict - baseline) / len(items) * 1e6:.1f} us/envelope"
    )


if __name__ == "__main__":
    main()
