"""The period a report covers, calendar days in one zone, and the summary statistics.

**Calendar days.** Every day count (day 0-29, days 1-7, uncovered days, months, waits)
is counted in one configured zone (``CAREJOURNEY_TIMEZONE``, default Europe/London),
whatever UTC offset an event carried: an instant's day is its local date there. So a
discharge at 23:30 UTC on 30 June is on 1 July in London (BST) and an emergency
admission at 00:30 UTC on 1 July is a day-0 readmission; in winter (GMT) local and UTC
days agree.

**Period.** ``--from D1 --to D2`` are local dates, both included: the period runs from
00:00 local on D1 to 00:00 local on the day after D2 (``start`` inclusive, ``end``
exclusive). Only facts that occurred before ``end`` are used: a report on a past period
does not change because of what happened after it (only because of facts about it that
arrived late, which is why every report names the ledger position it was computed at,
and can be computed as known at a time). One exception: the follow-up and readmission
windows of discharges inside the period look past its end, up to ``LOOK_AHEAD_DAYS``
(31) days and only as far as the ledger's data reaches (``look_ahead_end``,
``measures.hospital.data_until``).

**Statistics.** The median is the middle value (the mean of the two middle values for an
even count); the 90th percentile is nearest-rank: the ⌈0.9·n⌉-th smallest value, always
one of the observed values. Percentages are 100·numerator/denominator rounded to one
decimal place, and absent (null) when the denominator is 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class By(StrEnum):
    """What a report can be broken down by (``--by``, ``?by=``)."""

    setting = "setting"
    role = "role"
    organisation = "organisation"
    cohort = "cohort"


DIMENSIONS = tuple(By)
ALL = "all"
NONE = "none"  # the group of units with no named coordinator (role, setting)
IDENTIFIED = "identified"
NOT_IDENTIFIED = "not_identified"
LOOK_AHEAD_DAYS = 31  # the longest window that looks past a period's end (30-day readmission)
LONGEST_PERIOD_DAYS = 3_700  # about ten years: bounds the work one request can ask for
FIRST_YEAR, LAST_YEAR = 1900, 2999


class PeriodError(ValueError):
    """A period that cannot be reported on (reversed, too long, out of range)."""


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``first`` to ``last`` (both included) in ``zone``."""

    first: date
    last: date
    zone: ZoneInfo
    start: datetime = field(init=False, compare=False)  # 00:00 local on ``first``
    end: datetime = field(init=False, compare=False)  # 00:00 local the day after ``last``

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", self.midnight(self.first))
        object.__setattr__(self, "end", self.midnight(self.last + timedelta(days=1)))

    @property
    def look_ahead_end(self) -> datetime:
        """How far past ``end`` a discharge's follow-up windows may look."""
        return self.midnight(self.last + timedelta(days=1 + LOOK_AHEAD_DAYS))

    @classmethod
    def checked(cls, first: date, last: date, zone: ZoneInfo) -> Period:
        """A period, or ``PeriodError`` saying what is wrong with it."""
        if last < first:
            raise PeriodError(f"--to {last} is before --from {first}")
        if not (first.year >= FIRST_YEAR and last.year <= LAST_YEAR):
            raise PeriodError(f"dates must lie in the years {FIRST_YEAR}-{LAST_YEAR}")
        if (last - first).days + 1 > LONGEST_PERIOD_DAYS:
            raise PeriodError(f"a period may span at most {LONGEST_PERIOD_DAYS} days")
        return cls(first, last, zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def midnight(self, day: date) -> datetime:
        """00:00 local on ``day``."""
        return datetime.combine(day, time(0, 0), tzinfo=self.zone)

    def at_2359(self, day: date) -> datetime:
        """23:59 local on ``day``: the instant that decides whether a day is covered."""
        return datetime.combine(day, time(23, 59), tzinfo=self.zone)

    def day(self, moment: datetime) -> date:
        """The local date of an instant."""
        return moment.astimezone(self.zone).date()

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def contains_day(self, day: date) -> bool:
        return self.first <= day <= self.last

    def before_end(self, moment: datetime | None) -> datetime | None:
        """The instant if it occurred before the period ended, else None (not yet known
        at the end of the period)."""
        return moment if moment is not None and moment < self.end else None

    def months(self) -> list[str]:
        """Every calendar month the period touches, ``YYYY-MM``."""
        out = []
        year, month = self.first.year, self.first.month
        while (year, month) <= (self.last.year, self.last.month):
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def as_dict(self) -> dict[str, str]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.zone.key,
        }


def month_runs(first: date, last: date) -> Iterator[tuple[str, int]]:
    """The days ``first``..``last`` (inclusive) split by calendar month: (YYYY-MM, days)."""
    day = first
    while day <= last:
        following = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        until = min(last, following - timedelta(days=1))
        yield f"{day.year:04d}-{day.month:02d}", (until - day).days + 1
        day = following


def median(values: Sequence[float]) -> float | None:
    """The middle value (mean of the two middle ones for an even count); None if empty."""
    return float(statistics.median(values)) if values else None


def p90(values: Sequence[float]) -> float | None:
    """Nearest-rank 90th percentile: the ⌈0.9·n⌉-th smallest value; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[math.ceil(0.9 * len(ordered)) - 1])


def pct(numerator: int, denominator: int) -> float | None:
    """100·numerator/denominator to one decimal place; None when the denominator is 0."""
    return round(100.0 * numerator / denominator, 1) if denominator else None


def ratio(
    numerator: float, denominator: float, scale: float = 1.0, places: int = 2
) -> float | None:
    return round(scale * numerator / denominator, places) if denominator else None


def mean(values: Sequence[float], places: int = 3) -> float | None:
    return round(statistics.fmean(values), places) if values else None


def rounded(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)
