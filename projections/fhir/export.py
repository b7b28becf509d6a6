"""Bulk export for evaluators: everyone's resources as FHIR NDJSON, one file per type.

What the FHIR Bulk Data ``$export`` hands out (docs/fhir.md): every person the ledger
knows at one snapshot (``REPEATABLE READ``: the head position and the opt-out register
are read in the same snapshot as the events), folded as the projections fold them,
mapped by ``projections.fhir.resources`` and written one resource per line to
``{type}.ndjson`` (each line the body its R4B model validated, serialised by orjson).
Pseudonymised: no NHS number and no publisher business ids;
``Patient.id`` is the evaluator pseudonym (``projections.measures.privacy.pseudonym``,
the same as in per-person measure rows) and every other id is derived from it. People
in the National Data Opt-out register (``domain.optout``) are left out entirely, as is
anyone merged with them.

People are read the way a rebuild reads them (``projections.log.all_streams``, person
after person), except those linked by recorded merges, who are read and folded together
at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
import psycopg
from psycopg import IsolationLevel

from domain.journey import RecordedEvent
from domain.optout import opted_out_patients
from projections import fold, log
from projections.fhir.resources import RESOURCE_TYPES, Subject, person_documents
from projections.fold import FoldConfig
from projections.measures.privacy import pseudonym

NDJSON = "application/fhir+ndjson"
PROGRESS_EVERY = 50  # people between progress reports


class Cancelled(Exception):
    """The export was asked to stop; its files are incomplete."""


@dataclass(slots=True)
class ExportResult:
    transaction_time: datetime
    position: int
    counts: dict[str, int] = field(default_factory=dict)  # resource type -> lines written
    files: dict[str, Path] = field(default_factory=dict)
    people: list[UUID] = field(default_factory=list)  # exported (internal ids, for the log)
    excluded: int = 0  # people left out (opted out)


def check_types(types: Collection[str] | None) -> tuple[str, ...]:
    """The requested types in the mapping's order (all when none), or ValueError."""
    if not types:
        return RESOURCE_TYPES
    unknown = sorted(set(types) - set(RESOURCE_TYPES))
    if unknown:
        raise ValueError(
            f"unsupported resource type(s) {', '.join(unknown)}; "
            f"supported: {', '.join(RESOURCE_TYPES)}"
        )
    return tuple(t for t in RESOURCE_TYPES if t in set(types))


def export(
    database_url: str,
    out_dir: Path,
    *,
    pseudonym_key: str,
    types: Collection[str] | None = None,
    config: FoldConfig = fold.DEFAULT_CONFIG,
    progress: Callable[[int, int], None] | None = None,
    loads: log.Loads = json.loads,
) -> ExportResult:
    """Write the NDJSON files into ``out_dir`` (created) and say what was written.

    ``progress(done, total)`` is called every few people (``total`` is the number of
    patient streams); it may raise ``Cancelled`` to stop the export.
    """
    wanted = check_types(types)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda done, total: None)
    subject = Subject(
        patient_id=partial(_pseudonym, key=pseudonym_key), nhs_number=None, identifiers=False
    )
    with log.connect(database_url) as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            row = conn.execute("SELECT now()").fetchone()
            moment: datetime = row[0] if row else datetime.now()
            head = log.head(conn)
            result = ExportResult(moment, head)
            opted = opted_out_patients(conn)
            merged = log.merged_people(conn)
            total_row = conn.execute("SELECT count(*) FROM ledger_heads").fetchone()
            total = int(total_row[0]) if total_row else 0
            today = datetime.now(config.zone).date()
            with _Files(out_dir, wanted) as files:
                done = reported = 0
                for patient, streams, events in _people(conn, head, merged, loads):
                    done += streams
                    if opted & ({patient} | {e.patient_id for e in events}):
                        result.excluded += 1
                    else:
                        person = fold.prepare(events, patient, config)
                        for kind, body in person_documents(person, subject, today=today):
                            if kind in files.handles:
                                files.write(kind, orjson.dumps(body))
                        result.people.append(patient)
                    if done - reported >= PROGRESS_EVERY:
                        report(done, total)
                        reported = done
                report(done, total)
                result.counts = dict(files.counts)
                result.files = {k: out_dir / f"{k}.ndjson" for k, n in files.counts.items() if n}
    for kind, n in result.counts.items():
        if not n:
            (out_dir / f"{kind}.ndjson").unlink(missing_ok=True)
    result.counts = {k: n for k, n in result.counts.items() if n}
    return result


def _pseudonym(patient_id: UUID, key: str) -> str:
    return pseudonym(patient_id, key)


def _people(
    conn: psycopg.Connection[Any], head: int, merged: list[UUID], loads: log.Loads
) -> Iterator[tuple[UUID, int, list[RecordedEvent]]]:
    """(person, streams read, events) for everyone: single streams first, then the people
    linked by merges, each with every stream joined to them."""
    for events in log.all_streams(conn, head, merged, loads):
        yield events[0].patient_id, 1, events
    if merged:
        streams = log.streams(conn, merged, head, loads)
        every = [e for stream in streams.values() for e in stream]
        for root, events in fold.people(every).items():
            yield root, len({e.patient_id for e in events}), events


class _Files:
    """One open NDJSON file per requested type."""

    def __init__(self, out_dir: Path, kinds: tuple[str, ...]) -> None:
        self._stack = ExitStack()
        self.handles: dict[str, IO[bytes]] = {
            k: self._stack.enter_context((out_dir / f"{k}.ndjson").open("wb")) for k in kinds
        }
        self.counts: dict[str, int] = dict.fromkeys(kinds, 0)

    def write(self, kind: str, line: bytes) -> None:
        handle = self.handles[kind]
        handle.write(line)
        handle.write(b"\n")
        self.counts[kind] += 1

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
