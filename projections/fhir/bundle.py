"""A person's resources as a FHIR ``Bundle`` of type ``collection``, bitemporally, and
what a receiver reads back from one.

``person_bundle`` is the replay's twin (``projections/replay.py``): the person's events
known by ``known_at`` (``recorded_at <= K``), settled by the folds, cut at occurred time
``as_of``, mapped by ``projections.fhir.resources``. Entries carry ``fullUrl``
``{base}/{type}/{id}`` so the resources' relative references (``Patient/...``) resolve
inside the Bundle. ``intervals`` and ``spells`` read the coordinator intervals and the
admission spells back out of a Bundle, as a receiver would (the round-trip tests use
them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Unpack
from uuid import uuid5

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

from domain.journey import RecordedEvent
from projections.fhir import vocabulary as v
from projections.fhir.resources import NAMESPACE, Subject, person_resources
from projections.replay import Cut, as_at

CONTENT_TYPE = "application/fhir+json"
DEFAULT_BASE = f"{v.LEDGER}/fhir"


def person_bundle(
    events: Sequence[RecordedEvent],
    *,
    subject: Subject | None = None,
    base: str = DEFAULT_BASE,
    **cut: Unpack[Cut],
) -> Bundle:
    """The person's resources as at ``as_of`` (default: everything), knowing only what
    was recorded by ``known_at`` (default: everything). "Today" for overdue reviews and
    waits is the date of ``as_of`` (or now) in the zone, as in the replay."""
    person, moment = as_at(events, cut)
    resources = person_resources(
        person, subject, today=moment.astimezone(person.config.zone).date()
    )
    stamp = f"{person.patient_id}/{person.position}/{cut.get('as_of')}/{cut.get('known_at')}"
    return collection(resources, base=base, bundle_id=str(uuid5(NAMESPACE, stamp)))


def collection(
    resources: Sequence[Resource], *, base: str = DEFAULT_BASE, bundle_id: str | None = None
) -> Bundle:
    body: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": datetime.now(UTC).isoformat(),
        "entry": [
            {"fullUrl": f"{base}/{r.get_resource_type()}/{r.id}", "resource": r} for r in resources
        ],
    }
    if bundle_id is not None:
        body["id"] = bundle_id
    return Bundle.model_validate(body)


def resources_of(bundle: Bundle, kind: str) -> list[Any]:
    return [
        e.resource
        for e in bundle.entry or ()
        if e.resource is not None and e.resource.get_resource_type() == kind
    ]


def _sub(extension: Any, url: str) -> Any:
    return next((x for x in extension.extension or () if x.url == url), None)


def intervals(bundle: Bundle) -> list[dict[str, Any]]:
    """Every coordinator interval of every EpisodeOfCare, in order: who (staff id or
    ODS code), role, organisation, setting, named, valid_from, valid_to."""
    out = []
    for episode in resources_of(bundle, "EpisodeOfCare"):
        for ext in episode.extension or ():
            if ext.url != v.EXT_INTERVAL:
                continue
            period = _sub(ext, "period").valuePeriod
            out.append(
                {
                    "coordinator_id": _sub(ext, "coordinator").valueReference.identifier.value,
                    "role": _sub(ext, "role").valueCoding.code,
                    "organisation": _sub(ext, "organization").valueReference.identifier.value,
                    "setting": _sub(ext, "setting").valueCoding.code,
                    "named": _sub(ext, "named").valueBoolean,
                    "valid_from": period.start,
                    "valid_to": period.end,
                }
            )
    return out


def spells(bundle: Bundle) -> list[dict[str, Any]]:
    """The admission spells (Encounters of kind ``admission-spell`` not entered in
    error): hospital, admitted/discharged, destination code, wards in order, status."""
    out = []
    for encounter in resources_of(bundle, "Encounter"):
        kinds = {c.code for t in encounter.type or () for c in t.coding or ()}
        if "admission-spell" not in kinds or encounter.status == "entered-in-error":
            continue
        hosp = encounter.hospitalization
        disposition = hosp.dischargeDisposition if hosp is not None else None
        out.append(
            {
                "hospital": encounter.serviceProvider.identifier.value,
                "admitted_at": encounter.period.start,
                "discharged_at": encounter.period.end,
                "destination": disposition.text if disposition is not None else None,
                "locations": [loc.location.display for loc in encounter.location or ()],
                "status": "closed" if encounter.status == "finished" else "open",
                "part_of": encounter.partOf.reference if encounter.partOf else None,
            }
        )
    return out
