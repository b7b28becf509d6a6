"""The ADT mapping tables: trigger events, admission methods, discharge destinations.

Each table is documented, row for row, in docs/adt.md; a test holds the two together.
Codes are the NHS Data Dictionary's (what NHS trusts' PAS feeds carry in PV1-4 and
PV1-36), plus HL7 table 0007 letters for PV1-4 because many interface engines send them.
A code not in a table is refused with the table's codes in the reason, so an operator
can see what to fix (or extend here); an empty PV1-36 is "not known" (NHS code 99).
"""

from __future__ import annotations

from typing import Final

# Trigger (MSH-9.2) -> contract event type; A08 and A40 are handled specially.
TRIGGERS: Final[dict[str, str]] = {
    "A01": "Admitted",
    "A02": "Transferred",
    "A03": "Discharged",
    "A04": "ContactRecorded",
    "A06": "Admitted",  # outpatient -> inpatient: the inpatient stay starts
    "A07": "Discharged",  # inpatient -> outpatient: the inpatient stay ends
    "A08": "",  # identity/visit update: no journey event (recorded in adt_identity_updates)
    "A11": "AdmissionCancelled",
    "A12": "TransferCancelled",
    "A13": "DischargeCancelled",
    "A40": "PatientsMerged",
}
IDENTITY_UPDATE = "A08"

# PV1-4 -> AdmissionMethod.
ADMISSION_METHODS: Final[dict[str, str]] = {
    # NHS Data Dictionary "Admission Method"
    "11": "elective",  # waiting list
    "12": "elective",  # booked
    "13": "elective",  # planned
    "21": "emergency",  # accident and emergency / dental casualty department
    "22": "emergency",  # GP: after a request by a GP
    "23": "emergency",  # bed bureau
    "24": "emergency",  # consultant clinic
    "25": "emergency",  # admission via mental health crisis resolution team
    "28": "emergency",  # other means
    "2A": "emergency",  # A&E department of another provider
    "2B": "transfer",  # transfer of an admitted patient from another provider (emergency):
    #                     one continuous spell with the discharge, never a readmission
    "2C": "maternity",  # baby born at home as intended
    "2D": "emergency",  # other emergency admission
    "31": "maternity",  # ante partum
    "32": "maternity",  # post partum
    "81": "transfer",  # transfer from another provider, other than in an emergency
    "82": "maternity",  # birth of a baby in this provider
    "83": "maternity",  # baby born outside the provider, except at home as intended
    # HL7 table 0007 "Admission Type"
    "E": "emergency",  # emergency
    "A": "emergency",  # accident
    "U": "emergency",  # urgent
    "C": "elective",  # elective
    "R": "elective",  # routine
    "L": "maternity",  # labor and delivery
    "N": "maternity",  # newborn
}

# PV1-36 -> DischargeDestination (NHS Data Dictionary "Discharge Destination").
DISCHARGE_DESTINATIONS: Final[dict[str, str]] = {
    "19": "usual_residence",  # usual place of residence
    "29": "other",  # temporary place of residence
    "30": "other_hospital",  # repatriation from high security psychiatric hospital
    "37": "other",  # court
    "38": "other",  # penal establishment or police station
    "48": "other_hospital",  # high security psychiatric hospital, Scotland
    "49": "other_hospital",  # NHS provider: high security psychiatric accommodation
    "50": "other_hospital",  # NHS provider: medium secure unit
    "51": "other_hospital",  # NHS provider: ward for general patients
    "52": "other_hospital",  # NHS provider: maternity or neonatal ward
    "53": "other_hospital",  # NHS provider: mental illness or learning disabilities ward
    "54": "care_home",  # NHS run care home
    "65": "care_home",  # local authority residential accommodation
    "66": "other",  # local authority foster care
    "79": "died",  # not applicable: patient died or stillbirth
    "84": "other_hospital",  # non-NHS run hospital: medium secure unit
    "85": "care_home",  # non-NHS (other than local authority) run care home
    "87": "other_hospital",  # non-NHS run hospital
    "88": "other",  # non-NHS (other than local authority) run hospice
    "98": "other",  # not applicable: hospital provider spell not finished
    "99": "other",  # not known
}
DESTINATION_NOT_KNOWN = "99"

# PV1-2 -> PatientClass: HL7 table 0004 letters, NHS Data Dictionary "Patient
# Classification" digits, and the words UK EPR feeds send (matched ignoring case).
PATIENT_CLASSES: Final[dict[str, str]] = {
    "I": "inpatient",  # HL7 0004: inpatient
    "O": "outpatient",  # HL7 0004: outpatient
    "E": "emergency",  # HL7 0004: emergency
    "B": "maternity",  # HL7 0004: obstetrics
    "R": "outpatient",  # HL7 0004: recurring patient
    "P": "other",  # HL7 0004: preadmit
    "C": "other",  # HL7 0004: commercial account
    "N": "other",  # HL7 0004: not applicable
    "U": "unknown",  # HL7 0004: unknown
    "1": "inpatient",  # NHS: ordinary admission
    "2": "day_case",  # NHS: day case admission
    "3": "day_case",  # NHS: regular day admission
    "4": "inpatient",  # NHS: regular night admission
    "5": "maternity",  # NHS: mothers and babies using delivery facilities only
    "INPATIENT": "inpatient",
    "OUTPATIENT": "outpatient",
    "DAY CASE": "day_case",
    "DAYCASE": "day_case",
    "EMERGENCY": "emergency",
    "MATERNITY": "maternity",
}

# An A04 (registration/attendance) becomes a ContactRecorded in the acute setting. It is
# not a follow-up contact: every ADT event's source.system starts with this prefix, and
# the measures exclude ContactRecorded events whose source.system does (docs/adt.md).
ADT_SYSTEM_PREFIX: Final = "hl7v2:"
A04_MODE: Final = "face_to_face"
A04_ROLE: Final = "other"
