"""HL7 v2 acknowledgements (original mode, HL7 v2.5 chapter 2) for what the ledger did
with one ADT message.

Why a module of its own: the MLLP listener answers every message with one, and the ACK's
code is a promise to the sender: ``AA`` tells an interface engine to drop the message
from its retry queue, so it is only ever built from a result the ledger has committed
(``consumers/mllp.py``). The ACK itself comes from the maintained ``hl7`` library
(``Message.create_ack``: MSH-3/4 and MSH-5/6 swapped, MSH-9 ``ACK^<trigger>^ACK``, the
same MSH-11 processing id and MSH-12 version, MSA-2 = the message's MSH-10); this adds
the code and one ``ERR`` segment per reason:

* ``AA`` recorded, a duplicate (a resend of a recorded message), or an A08 noted;
* ``AE`` refused for its content (rejected or conflict), with the reasons
  ``carejourney adt import`` prints;
* ``AR`` what cannot be processed at all: not readable as HL7 v2, an HL7 version other
  than 2.x (MSH-12), not an ADT message or an unsupported trigger (MSH-9).

``ERR`` carries the reason both ways senders read it: ERR-1 (v2.3/2.4 ``ELD``) and ERR-2
location, ERR-3 code (HL7 table 0357), ERR-4 severity ``E`` and ERR-8 the text (v2.5+);
MSA-3 repeats the text (80 characters) for senders that read nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7
from hl7.containers import Message

from consumers.hl7v2 import normalise, text_of, value
from domain.contract import FieldError

APPLICATION = "CAREJOURNEY"
# HL7 v2.x of any minor version; MSH-12 left empty is tolerated (senders do).
_VERSION = re.compile(r"2(\.[0-9]+){1,2}")
# HL7 table 0357 (message error condition codes).
SEGMENT_SEQUENCE = ("100", "Segment sequence error")
REQUIRED_MISSING = ("101", "Required field missing")
DATA_TYPE = ("102", "Data type error")
TABLE_VALUE = ("103", "Table value not found")
UNSUPPORTED_TYPE = ("200", "Unsupported message type")
UNSUPPORTED_EVENT = ("201", "Unsupported event code")
UNSUPPORTED_VERSION = ("203", "Unsupported version id")
DUPLICATE_KEY = ("205", "Duplicate key identifier")
_REJECT_LOCS = {"", "MSH-9", "MSH-9.1", "MSH-9.2", "MSH-12"}
MSA3_MAX = 80


@dataclass(frozen=True, slots=True)
class Answer:
    """What to tell the sender: the code and, when refused, the reasons."""

    code: str  # AA / AE / AR
    errors: tuple[FieldError, ...] = ()
    conflict: bool = False

    def reason(self) -> str:
        return "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in self.errors)


def accepted() -> Answer:
    return Answer("AA")


def refused(status: str, errors: tuple[FieldError, ...]) -> Answer:
    """A rejection or conflict: ``AR`` when the message could not be processed at all
    (unreadable, MSH-9 or MSH-12 unsupported), else ``AE``."""
    if status == "rejected" and errors and all(e.loc in _REJECT_LOCS for e in errors):
        return Answer("AR", errors)
    return Answer("AE", errors, conflict=status == "conflict")


def precheck(source: Message | None) -> Answer | None:
    """What is rejected before the ledger sees it: an MSH-12 other than 2.x. (Anything
    unreadable is the mapping's to reject: its reason has loc "" and so gets ``AR``.)"""
    version = value(source.segment("MSH"), 12) if source is not None else ""
    if version and not _VERSION.fullmatch(version):
        return Answer(
            "AR", (FieldError("MSH-12", f"unsupported HL7 version {version!r} (2.x expected)"),)
        )
    return None


def build(source: Message | None, answer: Answer, control_id: str) -> bytes:
    """The ACK (ER7, ``\\r`` terminated, ASCII with HL7 escapes) to a message whose MSH
    is ``source`` (``header``), with our MSH-10 ``control_id``."""
    if source is None:
        return _bare(answer, control_id)
    msh = source.segment("MSH")
    ack = source.create_ack(
        answer.code,
        message_id=control_id,
        application=str(msh(5)) if value(msh, 5) else APPLICATION,
        facility=str(msh(6)) if value(msh, 6) else None,
    )
    ack.segment("MSH").assign_field(_now(), 7)
    if answer.errors:
        ack.segment("MSA").assign_field(_escaped(source, answer.reason()[:MSA3_MAX]), 3)
    lines = [str(segment) for segment in ack]
    lines.extend(_err(source, error, answer) for error in answer.errors)
    return ("\r".join(lines) + "\r").encode()


def header(raw: bytes | str) -> Message | None:
    """The message's MSH as a message of its own (enough to address the ACK), even when
    the rest does not parse; None when there is no readable MSH."""
    text = normalise(text_of(raw))
    first = text.split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return None
    try:
        return hl7.parse(first + "\r")
    except Exception:  # the library raises several kinds for malformed input
        return None


def _bare(answer: Answer, control_id: str) -> bytes:
    """An ACK to something with no readable MSH: nothing to copy, MSA-2 empty."""
    head = f"MSH|^~\\&|{APPLICATION}||||{_now()}||ACK^^ACK|{control_id}|P|2.5"
    source = hl7.parse(head + "\r")
    lines = [head, f"MSA|{answer.code}||{_escaped(source, answer.reason()[:MSA3_MAX])}"]
    lines.extend(_err(source, error, answer) for error in answer.errors)
    return ("\r".join(lines) + "\r").encode()


def _err(source: Message, error: FieldError, answer: Answer) -> str:
    code, text = _condition(error, answer)
    text_loc = f"{error.loc}: {error.msg}" if error.loc else error.msg
    seg, field = _location(error.loc)
    eld = f"{seg}^1^{field}^{code}&{text}&HL70357" if seg else f"^^^{code}&{text}&HL70357"
    erl = f"{seg}^1^{field}" if seg else ""
    fields = [
        "ERR",
        eld,
        erl,
        f"{code}^{text}^HL70357",
        "E",
        "",
        "",
        "",
        _escaped(source, text_loc),
    ]
    return "|".join(fields)


def _condition(error: FieldError, answer: Answer) -> tuple[str, str]:
    if answer.conflict:
        return DUPLICATE_KEY
    if error.loc in ("MSH-9", "MSH-9.1"):
        return UNSUPPORTED_TYPE
    if error.loc == "MSH-9.2":
        return UNSUPPORTED_EVENT
    if error.loc == "MSH-12":
        return UNSUPPORTED_VERSION
    if not error.loc:
        return SEGMENT_SEQUENCE
    if error.msg.startswith("no ") or "missing" in error.msg:
        return REQUIRED_MISSING
    if "not in the table" in error.msg or "not mapped" in error.msg:
        return TABLE_VALUE
    return DATA_TYPE


def _location(loc: str) -> tuple[str, str]:
    """``PID-3`` / ``PV1-19`` -> (``PID``, ``3``); anything else has no HL7 location."""
    match = re.fullmatch(r"([A-Z][A-Z0-9]{2})-([0-9]+)(?:\.[0-9]+)*", loc)
    return (match[1], match[2]) if match else ("", "")


def _escaped(source: Message, text: str) -> str:
    return str(source.escape(text))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
