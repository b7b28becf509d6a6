"""Synthetic time: London wall-clock moments, rendered with the offset a publisher sends.

A moment is an ``int``: seconds on the ``Europe/London`` wall clock since midnight at
the start of the cohort's window (day ``t // DAY``, time of day ``t % DAY``). Wall-clock
because the measures count calendar days in that zone (docs/measures.md, "Calendar days"): a
readmission "on day 29" must fall 29 London dates after its discharge whatever offset the message
carried. Integers because a cohort of 100,000 people does millions of time steps, and
``datetime`` arithmetic would be most of the cost.

Only when an envelope is written is a moment given an offset, in the style of the
publishing system, so the ledger's normalisation is exercised by every cohort:

* ``local``: local time with its offset, ``+00:00`` in winter and ``+01:00`` in summer;
* ``utc``: UTC spelled ``Z`` (typical of hospital feeds);
* ``utc_offset``: UTC spelled ``+00:00`` all year round.

Generated moments avoid 01:00-01:59, the hour that is missing or doubled on the two
clock-change nights, so wall-clock order is instant order.

The module also holds the few random helpers every theme uses (``Weighted``, ``one_of``,
``between``): leaner than ``Random.choices``/``choice``/``randrange``, which matters at
millions of calls, and still drawn only from the person's own ``Random``.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from random import Random
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

T = TypeVar("T")
Moment = int
DAY = 86_400
HOUR = 3_600
MINUTE = 60
LONDON = ZoneInfo("Europe/London")
STYLES = ("local", "utc", "utc_offset")
_MINUTES_SECONDS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))


class Clock:
    """Turns moments into dates and ISO-8601 text; caches per day and per hour."""

    def __init__(self, start: date) -> None:
        self.start = start
        self._dates: dict[int, str] = {}
        self._summer: dict[int, bool] = {}
        self._hours: dict[str, dict[int, tuple[str, str]]] = {style: {} for style in STYLES}

    def date_text(self, day: int) -> str:
        """``YYYY-MM-DD`` of day number ``day`` of the window."""
        text = self._dates.get(day)
        if text is None:
            text = (self.start + timedelta(days=day)).isoformat()
            self._dates[day] = text
        return text

    def is_summer(self, moment: Moment) -> bool:
        """Whether British Summer Time applies at this wall-clock moment."""
        hour = moment // HOUR
        summer = self._summer.get(hour)
        if summer is None:
            day, hour_of_day = divmod(hour, 24)
            wall = datetime.combine(self.start + timedelta(days=day), time(hour_of_day))
            summer = bool(LONDON.utcoffset(wall))
            self._summer[hour] = summer
        return summer

    def render(self, moment: Moment, style: str) -> str:
        """The moment as a publisher of the given style writes it."""
        hour, rest = divmod(moment, HOUR)
        cache = self._hours[style]
        parts = cache.get(hour)
        if parts is None:
            parts = self._hour_parts(hour, style)
            cache[hour] = parts
        return parts[0] + _MINUTES_SECONDS[rest] + parts[1]

    def _hour_parts(self, hour: int, style: str) -> tuple[str, str]:
        """Text before the minutes (``YYYY-MM-DDTHH:``) and the offset, for one wall-clock
        hour in one style (each hour is worked out once per cohort)."""
        summer = self.is_summer(hour * HOUR)
        if style == "local":
            suffix = "+01:00" if summer else "+00:00"
        else:
            hour -= 1 if summer else 0
            suffix = "Z" if style == "utc" else "+00:00"
        day, hour_of_day = divmod(hour, 24)
        return f"{self.date_text(day)}T{hour_of_day:02d}:", suffix


class Weighted(Generic[T]):
    """A fixed weighted choice, faster than ``Random.choices`` in the generator's loops."""

    __slots__ = ("_cumulative", "_total", "values")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.values = [value for value, _ in pairs]
        running = 0.0
        cumulative: list[float] = []
        for _, weight in pairs:
            running += weight
            cumulative.append(running)
        self._cumulative = cumulative
        self._total = running

    def pick(self, rng: Random) -> T:
        return self.values[bisect(self._cumulative, rng.random() * self._total)]


def one_of(rng: Random, options: Sequence[T]) -> T:
    """``rng.choice`` without its per-call overhead (the generator calls it constantly)."""
    return options[int(rng.random() * len(options))]


def between(rng: Random, low: int, high: int) -> int:
    """An integer in ``[low, high)``, like ``rng.randrange(low, high)`` but cheaper."""
    return low + int(rng.random() * (high - low))


def daytime(rng: Random, day: int, first_hour: int = 8, last_hour: int = 18) -> Moment:
    """A moment in the given hours of ``day`` (never 01:00-01:59 when first_hour >= 2)."""
    return day * DAY + int(rng.uniform(first_hour * HOUR, last_hour * HOUR))


# Emergency arrivals: more in the day and evening, fewer at night; no 01:00 hour.
_ANY_HOURS = (0, 2, 3, 4, 5, 6, 7, *[h for h in range(8, 23) for _ in range(3)], 23)


def any_hour(rng: Random, day: int) -> Moment:
    """A moment at any time of ``day`` except 01:00-01:59, busier in the daytime
    (emergency admissions)."""
    return day * DAY + one_of(rng, _ANY_HOURS) * HOUR + int(rng.random() * HOUR)


def days_later(
    rng: Random, moment: Moment, days: int, first_hour: int = 8, last_hour: int = 18
) -> Moment:
    """A moment in the given hours ``days`` London dates after ``moment``; on day 0, a
    moment later the same day (in those hours if there is time left, else by 23:30)."""
    if days > 0:
        return (moment // DAY + days) * DAY + int(rng.uniform(first_hour * HOUR, last_hour * HOUR))
    earliest = moment + 15 * MINUTE
    midnight = moment - moment % DAY
    latest = midnight + last_hour * HOUR
    if earliest >= latest:
        latest = midnight + 23 * HOUR + 30 * MINUTE
    if earliest >= latest:
        return earliest
    return earliest + int(rng.random() * (latest - earliest))


def minutes_later(rng: Random, moment: Moment, low: float, high: float) -> Moment:
    """A moment between ``low`` and ``high`` minutes after ``moment``, out of 01:xx."""
    return skip_small_hours(moment + int(rng.uniform(low, high) * MINUTE) + 1)


def skip_small_hours(moment: Moment) -> Moment:
    """Move a moment out of 01:00-01:59 (the clock-change hour) to 02:00."""
    if moment % DAY // HOUR == 1:
        return moment - moment % HOUR + HOUR
    return moment
