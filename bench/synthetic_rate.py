"""How fast the synthetic cohort generates (run by hand; not part of the test suite).

    .venv/bin/python bench/synthetic_rate.py [people] [seed]

Generation streams person by person, so memory stays flat at any size; the figure
that matters is events per second on one core (the demo and the benchmarks wait on it).
"""

from __future__ import annotations

import resource
import sys
import time

from domain.synthetic import generate_people


def main() -> None:
    people = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    started = time.perf_counter()
    events = 0
    for person in generate_people(people, seed=seed):
        events += len(person)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"{people:,} people, {events:,} events ({events / people:.1f} per person) "
        f"in {elapsed:.1f} s: {events / elapsed:,.0f} events/s, "
        f"{people / elapsed:,.0f} people/s; peak RSS {peak_kib / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
