"""Hand-built UK-style HL7 v2 ADT messages for tests (NHS number in PID-3, NHS codes).

Built by joining fields, as a sending PAS would; the code under test parses them with
the ``hl7`` library.
"""

from __future__ import annotations

from tests.envelopes import NHS_A

FACILITY = "RXH"
ODS = "RXH01"
FACILITIES = {FACILITY: ODS, "RYJ": "RYJ01"}


def adt(
    trigger: str,
    *,
    control: str = "M1",
    nhs: str | None = NHS_A,
    pid3: str | None = None,
    at: str = "20260302101500",
    evn2: str = "",
    msh7: str = "20260302101600",
    evn_trigger: str | None = None,
    facility: str = FACILITY,
    app: str = "PAS",
    encounter: str = "V100",
    ward: str = "WARD7",
    room: str = "R2",
    bed: str = "B3",
    prior: str = "",
    method: str = "21",
    destination: str = "19",
    attending: str = "",
    merged_nhs: str | None = None,
    mrg1: str | None = None,
    terminator: str = "\r",
    message_type: str = "ADT",
    pid_fields: dict[int, str] | None = None,
    pv1_fields: dict[int, str] | None = None,
) -> str:
    """One ER7 message; every segment ends with ``terminator``."""
    identifiers = (
        pid3
        if pid3 is not None
        else (f"X{control}^^^RXH^MR~{nhs}^^^NHS^NH" if nhs else f"X{control}^^^RXH^MR")
    )
    pid = ["PID", "1", "", identifiers, "", "DOE^JANE", "", "19400101", "F"]
    for number, text in (pid_fields or {}).items():
        pid.extend([""] * (number + 1 - len(pid)))
        pid[number] = text
    pv1 = ["PV1", "1", "I", f"{ward}^{room}^{bed}", method] + [""] * 32
    pv1[6] = prior
    pv1[7] = attending
    pv1[19] = encounter
    pv1[36] = destination
    for number, text in (pv1_fields or {}).items():
        pv1[number] = text
    segments = [
        f"MSH|^~\\&|{app}|{facility}|CAREJOURNEY|NHS|{msh7}||{message_type}^{trigger}"
        f"^ADT_{trigger}|{control}|P|2.4",
        f"EVN|{evn_trigger or trigger}|{evn2}||||{at}",
        "|".join(pid),
        "|".join(pv1).rstrip("|"),
    ]
    if merged_nhs is not None:
        segments.append(f"MRG|{merged_nhs}^^^NHS^NH")
    elif mrg1 is not None:  # MRG-1 as sent, e.g. an MRN only: "222^^^RXH^MR"
        segments.append(f"MRG|{mrg1}")
    return "".join(s + terminator for s in segments)
