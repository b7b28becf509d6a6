"""HL7 v2 ER7 as hospitals send it, read through the maintained ``hl7`` library.

The library parses one message into segments, fields, repetitions, components and
sub-components (``hl7.parse``), splits a file into messages (``hl7.split_file``) and
reads ``TS``/``DTM`` values (``hl7.parse_datetime``). It expects the standard segment
terminator ``\\r``; files and feeds also carry ``\\n`` or ``\\r\\n`` (docs/adt.md, "Reading
messages"), so terminators are normalised first. This module adds what the ADT mapping needs on top:
safe field access, the NHS number rule for ``CX`` lists, the sending-facility name, and
times read in the configured zone when they carry no offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import hl7
from hl7.containers import Message, Segment

from domain.nhs_number import check_nhs_number

HL7_NULL = '""'  # present and null: "delete" in an update (A08); empty means "no change"

# Terminators seen in the wild: the standard \r, and \n or \r\n from files and feeds.
_TERMINATOR = re.compile(r"\r\n|\n|\r")
# TS/DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ] (HL7 v2.5+ allows up to 4 fraction digits;
# up to 6 are read). Checked before the library reads it: it accepts trailing junk.
_DTM = re.compile(
    r"(?P<stamp>[0-9]{4}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}"
    r"(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?)?)?)?)(?P<offset>[+-][0-9]{4})?"
)

# The NHS number in a CX list (PID-3, MRG-1): identifier type code CX.5 = "NH" (HL7 table
# 0203, as NHS England's HL7 v2 ITK specification uses it), or assigning authority CX.4
# naming the NHS: HD.1 "NHS" (any case) or HD.2 the NHS number OID.
NHS_TYPE_CODE = "NH"
NHS_AUTHORITY = "NHS"
NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"


class Hl7Error(ValueError):
    """The bytes are not an HL7 v2 message the library can read."""


def text_of(raw: bytes | str) -> str:
    """Decode (UTF-8, the v2.8 default; else ISO 8859-1, which every byte decodes as)."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def normalise(text: str) -> str:
    """One message or file with every segment ended by ``\\r`` and blank lines dropped."""
    return "".join(line + "\r" for line in _TERMINATOR.split(text) if line.strip())


def split_messages(raw: bytes | str) -> list[str]:
    """The messages of a file (one or more, any terminator; batch/file header and
    trailer segments FHS/BHS/BTS/FTS dropped), each starting at its MSH segment."""
    text = normalise(text_of(raw))
    return [m for m in hl7.split_file(text) if m.strip()] if text else []


def parse(raw: bytes | str) -> Message:
    """One message, parsed by the library."""
    text = normalise(text_of(raw))
    if not text.startswith("MSH"):
        raise Hl7Error("not an HL7 v2 message: it must start with an MSH segment")
    try:
        message = hl7.parse(text)
    except Exception as exc:  # the library raises several kinds for malformed input
        raise Hl7Error(f"not a readable HL7 v2 message: {exc}") from None
    if len(message.segments("MSH")) != 1:
        raise Hl7Error("one message expected, found several MSH segments")
    return message


def segment(message: Message, name: str) -> Segment | None:
    """The first segment of that name, or None."""
    try:
        return message.segment(name)
    except KeyError:
        return None


def value(seg: Segment | None, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One leaf value (unescaped, stripped; "" when absent). ``""`` (HL7 null) is kept."""
    if seg is None:
        return ""
    try:
        found = seg.extract_field(1, field, rep, comp, sub)
    except IndexError:
        return ""
    return str(found).strip()


def present(seg: Segment | None, field: int) -> str:
    """A field's whole text, to tell empty ("no change") from ``""`` ("delete")."""
    if seg is None or field >= len(seg):
        return ""
    return str(seg(field)).strip()


def repetitions(seg: Segment | None, field: int) -> int:
    if seg is None or field >= len(seg):
        return 0
    return len(seg(field))


def namespace(seg: Segment | None, field: int) -> str:
    """An ``HD`` value's name: HD.1 (namespace id), else HD.2 (universal id)."""
    return value(seg, field, 1, 1) or value(seg, field, 1, 2)


@dataclass(frozen=True, slots=True)
class NhsNumberFound:
    """The result of the NHS number rule over a CX list (never echoes other ids)."""

    number: str | None
    problem: str | None


def nhs_number(seg: Segment | None, field: int, where: str) -> NhsNumberFound:
    """The NHS number among a CX list's repetitions (rule above).

    More than one repetition may say NHS; they must agree on one valid number. None at
    all is "no NHS number in <where>", naming the identifier types that were there.
    """
    tagged: list[str] = []
    types: list[str] = []
    for rep in range(1, repetitions(seg, field) + 1):
        kind = value(seg, field, rep, 5)
        authority, authority_oid = value(seg, field, rep, 4, 1), value(seg, field, rep, 4, 2)
        if kind and kind not in types:
            types.append(kind)
        if (
            kind.upper() == NHS_TYPE_CODE
            or authority.upper() == NHS_AUTHORITY
            or authority_oid == NHS_NUMBER_OID
        ):
            tagged.append(value(seg, field, rep, 1))
    if not tagged:
        found = f" (found identifier types: {', '.join(types)})" if types else ""
        return NhsNumberFound(None, f"no NHS number in {where}{found}")
    numbers: set[str] = set()
    for candidate in tagged:
        try:
            numbers.add(check_nhs_number(candidate))
        except ValueError as exc:
            return NhsNumberFound(None, f"the NHS number in {where} is not valid: {exc}")
    if len(numbers) > 1:
        return NhsNumberFound(None, f"{where} holds {len(numbers)} different NHS numbers")
    return NhsNumberFound(numbers.pop(), None)


def timestamp(text: str, zone: ZoneInfo) -> datetime:
    """An aware time from an HL7 ``TS``/``DTM`` value (its first component).

    Any precision from the year to fractions of a second; missing parts are the start of
    the period. With an offset the offset is used; without one the time is local wall
    time in ``zone`` (Europe/London by default: GMT in winter, BST in summer), never UTC
    by default. A wall time that occurs twice (autumn) is the first occurrence (BST); one
    that does not exist (spring) is read with the offset in force before the change.
    """
    match = _DTM.fullmatch(text)
    if match is None:
        raise ValueError(f"not an HL7 date-time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]): {text!r}")
    try:
        moment = hl7.parse_datetime(match["stamp"])
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {text!r} ({exc})") from None
    offset = match["offset"]
    if offset is None:
        return moment.replace(tzinfo=zone)
    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
    if minutes >= 24 * 60:
        raise ValueError(f"not a valid UTC offset: {offset!r}")
    sign = -1 if offset[0] == "-" else 1
    return moment.replace(tzinfo=timezone(timedelta(minutes=sign * minutes)))


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
