"""Timing shared by the bench scripts: the best of several runs, since on a shared
machine the minimum is the figure least disturbed by other work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest of ``runs`` timings of ``work`` (seconds) and its last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result
