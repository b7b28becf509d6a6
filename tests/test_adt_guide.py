"""The worked examples of docs/adt.md are what the mapping does: one per supported
trigger, each a UK-style message and the envelope ``decode`` makes of it.

When the mapping changes, regenerate the block: ``.venv/bin/python -m tests.test_adt_guide``
(rewrites the text between the markers in docs/adt.md), then read the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from consumers import adt_codes
from consumers.adt import Decoded, IdentityUpdate, decode
from domain.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "adt.md"
START, END = "<!-- worked-examples:start -->", "<!-- worked-examples:end -->"
SETTINGS = Settings(adt_facilities={"RXH": "RXH01"})

MSH = "MSH|^~\\&|EPR|RXH|CAREJOURNEY|NHS|{sent}||ADT^{trigger}^ADT_{structure}|{control}|P|2.4"
PID = "PID|1||{pid3}||SMITH^ALICE||19480312|F"
PID3 = "RXH1234567^^^RXH^MR~9434765919^^^NHS^NH"
PV1_FIELDS = 36


def pv1(**fields: str) -> str:
    """A PV1 segment from named fields (numbers as in the standard)."""
    values = [""] * (PV1_FIELDS + 1)
    values[0] = "PV1"
    values[1] = "1"
    for name, text in fields.items():
        values[int(name[1:])] = text
    return "|".join(values).rstrip("|")


# trigger -> (what it is, the segments after MSH)
EXAMPLES: dict[str, tuple[str, list[str]]] = {
    "A01": (
        "an emergency admission to ward 7, bed 3",
        [
            "EVN|A01|202603021015|||C1234^JONES|202603021015",
            PID,
            pv1(f2="I", f3="WARD7^R2^B3", f4="21", f19="V100"),
        ],
    ),
    "A01 local": (
        "an admission as many EPRs send it: hospital number only, local text in PV1-2 and PV1-4",
        [
            "EVN|A01|202603041940|||C1234^JONES|202603041940",
            "PID|1||RXH7654321^^^RXH^MR||DOE^JOHN||19900101|M",
            pv1(f2="DAY CASE", f3="MATERNITY^R1^B1", f4="Matern Ante", f19="V300"),
        ],
    ),
    "A02": (
        "a transfer from ward 7 to the stroke unit",
        [
            "EVN|A02|202603031100|||C1234^JONES|202603031100",
            PID,
            pv1(f2="I", f3="STROKE^R1^B4", f6="WARD7^R2^B3", f19="V100"),
        ],
    ),
    "A03": (
        "a discharge to the usual place of residence",
        [
            "EVN|A03|202603101430|||C1234^JONES|202603101430",
            PID,
            pv1(f2="I", f3="STROKE^R1^B4", f19="V100", f36="19"),
        ],
    ),
    "A04": (
        "an attendance registered at the hospital (e.g. an outpatient clinic)",
        [
            "EVN|A04|202603170900|||C1234^JONES|202603170900",
            PID,
            pv1(f2="O", f3="CARDIO^^", f7="C5678^PATEL^RAJ", f19="V200"),
        ],
    ),
    "A06": (
        "an outpatient becoming an inpatient",
        [
            "EVN|A06|202603171130|||C1234^JONES|202603171130",
            PID,
            pv1(f2="I", f3="WARD4^R1^B2", f4="24", f19="V200"),
        ],
    ),
    "A07": (
        "an inpatient becoming an outpatient",
        [
            "EVN|A07|202603181000|||C1234^JONES|202603181000",
            PID,
            pv1(f2="O", f3="CARDIO^^", f19="V200"),
        ],
    ),
    "A08": (
        "an update of patient information (a new address, the phone number deleted)",
        [
            "EVN|A08|202603051200|||C1234^JONES|202603051200",
            'PID|1||{pid3}||SMITH^ALICE||19480312|F|||1 NEW ROAD^^LEEDS^^LS1 1AA||""',
            pv1(f2="I", f19="V100"),
        ],
    ),
    "A11": (
        "the admission of visit V100 cancelled (entered in error)",
        ["EVN|A11|202603021030|||C1234^JONES|202603021030", PID, pv1(f2="I", f19="V100")],
    ),
    "A12": (
        "the transfer of visit V100 cancelled",
        ["EVN|A12|202603031115|||C1234^JONES|202603031115", PID, pv1(f2="I", f19="V100")],
    ),
    "A13": (
        "the discharge of visit V100 cancelled (the patient stays)",
        ["EVN|A13|202603101500|||C1234^JONES|202603101500", PID, pv1(f2="I", f19="V100")],
    ),
    "A40": (
        "a duplicate record merged into this one (MRG-1 names the merged person)",
        [
            "EVN|A40|202603201000|||C1234^JONES|202603201000",
            PID,
            "MRG|9434765870^^^NHS^NH",
        ],
    ),
    "A40 local": (
        "a merge by hospital number (MRN only in MRG-1): the temporary record of an "
        "unidentified patient merged into the known person",
        [
            "EVN|A40|202603211000|||C1234^JONES|202603211000",
            PID,
            "MRG|RXH7654321^^^RXH^MR",
        ],
    ),
}
STRUCTURES = {"A01": "A01", "A04": "A01", "A08": "A01", "A11": "A09", "A13": "A01"}


def message(example: str) -> str:
    """The example's message; MSH-7 (sent) 30 s after the event time in EVN-6."""
    _, segments = EXAMPLES[example]
    trigger = example[:3]
    head = MSH.format(
        sent=segments[0].split("|")[6] + "30",
        trigger=trigger,
        structure=STRUCTURES.get(trigger, trigger),
        control=f"MSG{trigger}{len(example):04d}",
    )
    return "\r".join([head, *(s.replace("{pid3}", PID3) for s in segments)]) + "\r"


def shown(example: str) -> dict[str, Any]:
    """What the guide shows of ``decode``'s result (the event id is left out: it is
    derived, not chosen, and says nothing to a reader)."""
    outcome = decode(message(example), SETTINGS)
    if isinstance(outcome, Decoded):
        out = {k: v for k, v in outcome.envelope.items() if k != "event_id"}
        if outcome.notes:
            out["notes (printed, not recorded)"] = list(outcome.notes)
        return out
    if isinstance(outcome, IdentityUpdate):
        return {
            "identity update (no journey event)": {
                "sent": list(outcome.sent),
                "deleted": list(outcome.deleted),
            }
        }
    return {"rejected": outcome.reason()}


def render() -> str:
    parts = [START, ""]
    for example, (what, _) in EXAMPLES.items():
        if example[:3] not in adt_codes.TRIGGERS:
            continue
        parts += [
            f"#### {example[:3]}: {what}",
            "",
            "```",
            message(example).replace("\r", "\n").rstrip("\n"),
            "```",
            "",
            "```json",
            json.dumps(shown(example), indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def _block(text: str) -> str:
    start, end = text.index(START), text.index(END) + len(END)
    return text[start:end]


def test_every_supported_trigger_has_a_worked_example() -> None:
    assert set(adt_codes.TRIGGERS) <= {example[:3] for example in EXAMPLES}


def test_worked_examples_in_the_guide_are_what_the_mapping_does() -> None:
    assert _block(DOCS.read_text()) == render(), (
        "docs/adt.md's worked examples differ from the mapping: run "
        "`.venv/bin/python -m tests.test_adt_guide` and read the diff"
    )


if __name__ == "__main__":
    text = DOCS.read_text()
    DOCS.write_text(text.replace(_block(text), render()))
    sys.stdout.write("docs/adt.md: worked examples rewritten\n")
