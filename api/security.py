"""Who is calling: bearer API keys, the principals they stand for, and what roles may do.

A key is 256 random bits shown once (``carejourney keys create``); only its SHA-256 is
stored, in the keys file (``CAREJOURNEY_API_KEYS_FILE``, default
``<CAREJOURNEY_DATA_DIR>/api-keys.json``) and/or ``CAREJOURNEY_API_KEYS`` (a JSON array
of the same entries). A plain SHA-256 is enough because keys are random, not chosen by
people: there is no dictionary to try, so a slow password hash would only cost latency.
Lookup is by the digest, so a key's text is never compared character by character.

The file is re-read when it changes (checked at most once a second), so a key created
while the server runs works without a restart, in every worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from domain.settings import Settings

KEY_PREFIX = "cjk_"
KEYS_FILE_NAME = "api-keys.json"
RELOAD_EVERY_SECONDS = 1.0


class Role(StrEnum):
    """What a principal may do (see ``docs/api.md`` for the full matrix)."""

    PUBLISHER = "publisher"  # publish events for its own organisations; read their status
    AUDITOR = "auditor"  # person-level records, replay, verify, the access log
    COORDINATOR = "coordinator"  # coordinator, journey, care plans, caseload, unassigned
    EVALUATOR = "evaluator"  # population measures only: never person-level data
    ADMIN = "admin"  # everything


ORGANISATION_ROLES = frozenset({Role.PUBLISHER, Role.COORDINATOR})

OdsCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{3,10}$")]
Agreement = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,99}$")
]
EXPORT_ROLES = frozenset({Role.EVALUATOR, Role.ADMIN})


class KeyEntry(BaseModel):
    """One stored key: the principal it stands for and the SHA-256 of the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    role: Role
    organisations: tuple[OdsCode, ...] = ()
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    created_at: datetime | None = None
    # The data-sharing agreement under which this key may run the FHIR bulk export
    # (record-level data): the export right is explicit, never implied by a role.
    export_agreement: Agreement | None = None


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


_ENTRIES = TypeAdapter(list[KeyEntry])


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller; ``organisations`` bound publishers and coordinators."""

    name: str
    role: Role
    organisations: frozenset[str] = field(default_factory=frozenset)
    export_agreement: str | None = None

    @property
    def label(self) -> str:
        """How the access log names the caller."""
        return f"{self.role.value}:{self.name}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def keys_path(settings: Settings) -> Path:
    """The configured keys file, else one beside the embedded database's data."""
    return settings.api_keys_file or settings.data_dir / KEYS_FILE_NAME


def read_keys_file(path: Path) -> list[KeyEntry]:
    if not path.exists():
        return []
    return KeysFile.model_validate_json(path.read_bytes()).keys


def add_key(
    path: Path,
    role: Role,
    organisations: Iterable[str],
    name: str,
    export_agreement: str | None = None,
) -> str:
    """Create a key, store its hash in the file (0600), and return the key (shown once)."""
    key = new_key()
    entries = read_keys_file(path)
    if any(e.name == name for e in entries):
        raise ValueError(f"a key named {name!r} already exists in {path}")
    entries.append(
        KeyEntry(
            name=name,
            role=role,
            organisations=tuple(organisations),
            sha256=hash_key(key),
            created_at=datetime.now(UTC),
            export_agreement=export_agreement,
        )
    )
    write_keys_file(path, entries)
    return key


def write_keys_file(path: Path, entries: list[KeyEntry]) -> None:
    """Replace the file atomically (readers never see half a file), readable by owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps({"keys": [_stored(e) for e in entries]}, indent=2))
    tmp.replace(path)


def _stored(entry: KeyEntry) -> dict[str, object]:
    """An entry as the file keeps it; a key without the export right is written exactly
    as before the field existed."""
    exclude = {"export_agreement"} if entry.export_agreement is None else None
    return entry.model_dump(mode="json", exclude=exclude)


def check_entry(
    role: Role, organisations: Iterable[str], export_agreement: str | None = None
) -> None:
    """Publishers and coordinators need an organisation; other roles take none. Only
    evaluator and admin keys may carry an export right (``export_agreement``)."""
    if export_agreement is not None and role not in EXPORT_ROLES:
        raise ValueError(f"a {role.value} key cannot carry an export right (evaluator or admin)")
    orgs = list(organisations)
    if role in ORGANISATION_ROLES and not orgs:
        raise ValueError(f"a {role.value} key needs at least one organisation (--org CODE)")
    if role not in ORGANISATION_ROLES and orgs:
        raise ValueError(f"a {role.value} key is not bound to organisations")


class KeyRing:
    """Key digests -> principals, from the environment and the (re-read) keys file."""

    def __init__(self, settings: Settings) -> None:
        self.path = keys_path(settings)
        self._env = _ENTRIES.validate_json(settings.api_keys) if settings.api_keys else []
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._by_digest: dict[str, Principal] = {}
        self._load()

    def __len__(self) -> int:
        self._refresh()
        return len(self._by_digest)

    def principal(self, key: str) -> Principal | None:
        return self.principal_for_digest(hash_key(key))

    def principal_for_digest(self, digest: str) -> Principal | None:
        """The principal of a key known by its SHA-256 (a page session keeps only that,
        so revoking the key ends its sessions)."""
        self._refresh()
        return self._by_digest.get(digest)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_EVERY_SECONDS:
            return
        with self._lock:
            self._checked = now
            if self._file_stamp() != self._stamp:
                self._load()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _load(self) -> None:
        self._stamp = self._file_stamp()
        entries = [*self._env, *read_keys_file(self.path)]
        self._by_digest = {
            e.sha256: Principal(e.name, e.role, frozenset(e.organisations), e.export_agreement)
            for e in entries
        }
        self._checked = time.monotonic()


def env_entry(
    role: Role,
    organisations: Iterable[str],
    name: str,
    key: str,
    export_agreement: str | None = None,
) -> str:
    """One ``CAREJOURNEY_API_KEYS`` entry as JSON (tests and deployments without a file)."""
    entry = KeyEntry(
        name=name,
        role=role,
        organisations=tuple(organisations),
        sha256=hash_key(key),
        export_agreement=export_agreement,
    )
    return json.dumps(entry.model_dump(mode="json", exclude_none=True))
