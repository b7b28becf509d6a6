"""The systems, codes and extension URLs the FHIR mapping uses (docs/fhir.md lists them).

UK Core's identifier systems where they exist (NHS number, ODS codes); HL7's code systems
for encounter class, priority, admit source, discharge disposition, goal achievement and
provenance; and the ledger's own namespace (``LEDGER``) for what has no standard home:
staff and publisher identifiers, the coordinator-interval and referral-wait extensions,
and the ledger-event reference of a Provenance entity. ``LEDGER`` is a placeholder a
deployment replaces with its registered canonical base; receivers match on the URLs.
"""

from __future__ import annotations

from typing import Final

NHS_NUMBER: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS: Final = "https://fhir.nhs.uk/Id/ods-organization-code"

LEDGER: Final = "https://fhir.carejourney.example"
STAFF: Final = f"{LEDGER}/Id/staff"
ENCOUNTER_ID: Final = f"{LEDGER}/Id/encounter"
REFERRAL_ID: Final = f"{LEDGER}/Id/referral"
PLAN_ID: Final = f"{LEDGER}/Id/care-plan"
GOAL_ID: Final = f"{LEDGER}/Id/goal"
LEDGER_EVENT: Final = f"{LEDGER}/Id/ledger-event"

ROLE: Final = f"{LEDGER}/CodeSystem/coordinator-role"
SETTING: Final = f"{LEDGER}/CodeSystem/setting"
ENCOUNTER_KIND: Final = f"{LEDGER}/CodeSystem/encounter-kind"
EPISODE_TYPE: Final = f"{LEDGER}/CodeSystem/episode-type"
TEAM_ROLE: Final = f"{LEDGER}/CodeSystem/care-team-role"
ADMISSION_METHOD: Final = f"{LEDGER}/CodeSystem/admission-method"

EXT_INTERVAL: Final = f"{LEDGER}/StructureDefinition/coordinator-interval"
EXT_STATUS_HISTORY: Final = f"{LEDGER}/StructureDefinition/status-history"
EXT_REFERRAL_WAIT: Final = f"{LEDGER}/StructureDefinition/referral-wait"
EXT_LEDGER_EVENT: Final = f"{LEDGER}/StructureDefinition/ledger-event"
# UK Core's admission-method extension (its value set is the NHS Data Dictionary's; the
# ledger's coarser methods travel as text with the ledger's own code).
EXT_ADMISSION_METHOD: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
)

ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ADMIT_SOURCE: Final = "http://terminology.hl7.org/CodeSystem/admit-source"
DISCHARGE_DISPOSITION: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"

# ContactRecorded.mode -> Encounter.class (v3 ActCode)
CONTACT_CLASS: Final = {
    "face_to_face": ("AMB", "ambulatory"),
    "phone": ("VR", "virtual"),
    "video": ("VR", "virtual"),
    "home_visit": ("HH", "home health"),
}
# Admitted.method -> Encounter.priority (v3 ActPriority), where it says one
ADMISSION_PRIORITY: Final = {"emergency": ("EM", "emergency"), "elective": ("EL", "elective")}
# Admitted.method -> hospitalization.admitSource, where HL7's codes say it
ADMIT_SOURCES: Final = {"transfer": ("hosp-trans", "Transferred from other hospital")}
# Discharged.destination -> hospitalization.dischargeDisposition
DISPOSITIONS: Final = {
    "usual_residence": ("home", "Home"),
    "care_home": ("long", "Long-term care"),
    "other_hospital": ("other-hcf", "Other healthcare facility"),
    "died": ("exp", "Expired"),
    "other": ("oth", "Other"),
}
# ReferralMade.priority -> ServiceRequest.priority
REFERRAL_PRIORITY: Final = {"routine": "routine", "urgent": "urgent", "two_week_wait": "asap"}
# care plan goal status -> Goal.lifecycleStatus
GOAL_LIFECYCLE: Final = {"open": "active", "achieved": "completed", "dropped": "cancelled"}
