"""Times and days the API accepts: ISO-8601 with a UTC offset, inside a sane range.

Every time the API takes (``as_of``, ``known_at``, the access log's ``from``/``to``)
goes through ``AwareTime``, so all endpoints refuse the same things with the same
message: a time without an offset (ambiguous for an audit question: whose midnight?),
a number (pydantic would read ``1735689600`` or ``0.5`` as seconds since 1970), and a
time outside years ``FIRST_YEAR``..``LAST_YEAR`` (``9999-12-31T23:59:59-23:59`` is a
valid ISO-8601 text whose UTC instant does not fit a ``datetime``; it was a 500 that
logged the request path). Days (``YYYY-MM-DD``) are bounded the same way (``day``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

FIRST_YEAR = 1900
LAST_YEAR = 2199

_ISO_AWARE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})"
)
_ISO_NAIVE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"
)

NEEDS_OFFSET = "give an ISO-8601 time with a UTC offset (e.g. 2026-03-02T12:00:00+00:00 or ...Z)"
NAIVE = "give a UTC offset"  # the message the API has always given for a naive time
OUT_OF_RANGE = f"out of range: give a time in the years {FIRST_YEAR} to {LAST_YEAR}"


class TimeError(ValueError):
    """A time or day the API does not accept; the message says what to send."""


def aware(value: Any) -> datetime:
    """The UTC instant of an ISO-8601 text with an offset, or ``TimeError``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _ISO_AWARE.fullmatch(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise TimeError(f"not a valid time: {NEEDS_OFFSET}") from None
    elif isinstance(value, str) and _ISO_NAIVE.fullmatch(value.strip()):
        raise TimeError(NAIVE)
    else:
        raise TimeError(NEEDS_OFFSET)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimeError(NAIVE)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise TimeError(OUT_OF_RANGE) from None
    if not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise TimeError(OUT_OF_RANGE)
    return utc


def day(value: str) -> date:
    """A ``YYYY-MM-DD`` day inside the accepted years, or ``TimeError``."""
    try:
        found = date.fromisoformat(value)
    except ValueError:
        raise TimeError("give a date as YYYY-MM-DD") from None
    if not FIRST_YEAR <= found.year <= LAST_YEAR:
        raise TimeError(f"out of range: give a date in the years {FIRST_YEAR} to {LAST_YEAR}")
    return found


def _validated(value: Any) -> datetime:
    try:
        return aware(value)
    except TimeError as exc:
        raise PydanticCustomError("aware_time", str(exc)) from None


def _bounded_day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        raise PydanticCustomError("day", "give a date as YYYY-MM-DD")
    try:
        return day(value)
    except TimeError as exc:
        raise PydanticCustomError("day", str(exc)) from None


AwareTime = Annotated[datetime, BeforeValidator(_validated)]
"""A query or body time: ISO-8601 with an offset, as a UTC ``datetime``."""

Day = Annotated[date, BeforeValidator(_bounded_day)]
"""A query day: ``YYYY-MM-DD`` inside the accepted years."""

# The two clocks of a person-level read, said the same way by every endpoint that takes them.
AsOf = Annotated[
    AwareTime | None,
    Query(
        description="Occurred time T (ISO-8601 with an offset): the person as they were at T. "
        "Omit for now.",
        examples=["2026-03-02T12:00:00Z"],
    ),
]
KnownAt = Annotated[
    AwareTime | None,
    Query(
        description="Ledger time K (ISO-8601 with an offset): only the events recorded by K. "
        "Omit for everything recorded.",
        examples=["2026-03-03T00:00:00Z"],
    ),
]
