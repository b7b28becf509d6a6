"""Every setting of the ledger, in one place.

All names are read from the environment with the ``CAREJOURNEY_`` prefix (plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``), so the README, ``compose.yaml`` and the code
cannot drift apart: the compose test reads this object.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, StringConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_PSEUDONYM_KEY = "change-me-pseudonym-key"


class Settings(BaseSettings):
    """The ledger's configuration; unset database URL means the embedded server.

    Each setting's description is the docstring under it (``use_attribute_docstrings``),
    so ``Field`` appears only where a setting has a constraint, a factory or an alias."""

    model_config = SettingsConfigDict(
        env_prefix="CAREJOURNEY_", extra="ignore", use_attribute_docstrings=True
    )

    database_url: str | None = None
    """libpq URL of a PostgreSQL server; unset starts the embedded one."""
    app_database_url: str | None = None
    """Read by `carejourney db app-role` (run as the tables' owner): the user and password of this
    libpq URL are the application role it creates, the one the services' CAREJOURNEY_DATABASE_URL
    names (docs/integrity.md, "Roles")."""
    test_database_url: str | None = None
    """Server the test suite uses; unset starts an embedded one for the run."""
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".carejourney")
    """Folder for the embedded PostgreSQL data and the API keys file: ./.carejourney under the
    current directory (gitignored), wherever the package is installed."""
    timezone: str = "Europe/London"
    """Zone in which calendar days are counted and offset-less times are read."""
    future_tolerance_seconds: int = 86_400
    """occurred_at may be at most this far after recorded_at."""
    pseudonym_key: str = PLACEHOLDER_PSEUDONYM_KEY
    """Secret for evaluator pseudonyms (HMAC-SHA-256). `serve` and `measures` refuse the placeholder
    unless told it is development."""
    allow_placeholder_pseudonym_key: bool = False
    """Development only: let `serve` and `measures` run with the placeholder pseudonym key (anyone
    can then recompute the pseudonyms)."""
    api_keys_file: Path | None = None
    """File of hashed API keys."""
    fhir_export_dir: Path | None = None
    """Where FHIR bulk export files are kept (default <DATA_DIR>/fhir-exports)."""
    api_keys: str | None = None
    """JSON array of hashed API key entries (as in the keys file)."""
    api_host: str = "127.0.0.1"
    """Address `carejourney serve` binds."""
    api_port: int = 8000
    """Port `carejourney serve` listens on."""
    api_workers: int = 1
    """uvicorn worker processes."""
    api_max_body_bytes: int = 10_485_760
    """Largest HTTP request body accepted (413 above)."""
    api_max_headers: int = Field(default=100, ge=1)
    """Most HTTP request header fields (431 above)."""
    api_max_header_bytes: int = Field(default=16_384, ge=256)
    """Largest HTTP request head in bytes (431 above)."""
    care_relationship_days: int = Field(default=365, ge=1)
    """A coordinator organisation's care relationship with a person lasts this many days after its
    last standing fact about them or its coordination ended."""
    rejection_retention_days: int = Field(default=30, ge=1)
    """Refused messages (and their dead-letter copies kept here) are purged after this many days
    (`carejourney retention run`, and hourly in `consume`)."""
    ready_max_lag: int = 10_000
    """/readyz fails when a projection lags the ledger by more."""
    batch_max: int = 5_000
    """Largest batch accepted in one append."""
    late_arrival_days: int = 7
    """An event recorded after one of the person's events that occurred more than this many days
    after it is flagged as a late arrival (projections)."""
    small_number_max: int = Field(default=7, ge=0)
    """Evaluator-facing measures suppress counts from 1 to this (0: none)."""
    rounding_base: int = Field(default=5, ge=1)
    """Evaluator-facing counts not suppressed are rounded to the nearest multiple of this (1: no
    rounding)."""
    referral_wait_threshold_days: int = Field(default=28, ge=0)
    """Referral waits: the '% within threshold' threshold."""
    alert_unassigned_days: int = Field(default=14, ge=0)
    """Alerts: a person without a named coordinator for longer than this opens an alert in the
    practice's team queue (projections)."""
    session_minutes: int = Field(default=30, ge=1, le=1440)
    """Lifetime of a browser session cookie (pages sign-in)."""

    log_origin: str = Field(default="carejourney.local/ledger", pattern=r"^[^\s+]+$")
    """The transparency log's origin line in checkpoints (and the default signing key name): a
    schema-less URL, no spaces or '+'."""
    signing_key_file: Path | None = None
    """File of the Ed25519 checkpoint signing key (default <DATA_DIR>/checkpoint-signing.key; made
    on first use on the embedded default)."""
    checkpoint_topic: str = "care.checkpoints.v1"
    """Kafka topic every signed checkpoint is published to."""

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CAREJOURNEY_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    """Kafka brokers; unset means ingestion is HTTP and file import only."""
    kafka_api_version: str | None = None
    """Pin kafka-python's api_version, e.g. '2.8' (tansu)."""
    events_topic: str = "care.events.v1"
    dead_letter_topic: str = "care.events.v1.dlq"
    adt_topic: str = "care.adt.hl7v2"
    adt_dead_letter_topic: str = "care.adt.hl7v2.dlq"
    ledger_topic: str | None = None
    """Where `carejourney log publish` sends every recorded event in position order (no
    identifiers); unset: not published (docs/alerts.md)."""
    alerts_topic: str = "care.alerts.v1"
    """Where `carejourney alerts publish` sends every alert change, keyed by the coordinator
    (docs/alerts.md)."""
    adt_facilities: dict[str, Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{3,10}$")]] = (
        Field(default_factory=dict)
    )
    """JSON object: HL7 sending facility (MSH-4.1) -> ODS code; an ADT message from a facility not
    listed is rejected."""
    adt_code_maps: Path | None = None
    """JSON or YAML file of per-facility code maps: local PV1-2/PV1-4/PV1-36 codes -> the contract's
    values (docs/adt.md)."""
    adt_identity_key: str = "carejourney-adt-identity-v1"
    """Secret keying ADT event ids (they are derived from message content including the patient
    identifier); set once, before the first message."""
    adt_discharge_ready: dict[str, Any] | None = None
    """JSON object: how this site's A08s say 'ready for discharge' (segment, flag_field/flag,
    time_field, reason_field, reasons); unset: A08s are identity updates only
    (consumers/discharge_ready.py, docs/alerts.md)."""
    mllp_host: str = "127.0.0.1"
    """Address `carejourney mllp` binds (0.0.0.0: all)."""
    mllp_port: int = 2575
    """Port `carejourney mllp` listens on."""
    mllp_max_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest MLLP message accepted; a larger one closes its connection."""
    mllp_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    """An MLLP connection silent this long (or this slow to send one message or read one ACK) is
    closed."""
    consumer_group: str = "carejourney-ledger"
    kafka_allowed_organisations: str | None = None
    """Comma-separated ODS codes Kafka envelopes may name as source.organisation; unset allows every
    organisation."""
    consumer_batch_size: int = Field(default=2000, ge=1)
    """Most Kafka messages recorded in one transaction."""
    consumer_batch_bytes: int = Field(default=1_048_576, ge=1)
    """About the most message bytes in one transaction."""
    consumer_max_backoff_seconds: float = Field(default=30.0, gt=0)
    """Longest wait between retries when a service is down."""
    consumer_retraction_hold_seconds: float = Field(default=300.0, ge=0)
    """How long a Kafka retraction read before its target is held and retried as new events arrive
    before it is dead-lettered (0: at once)."""

    @property
    def kafka_allowed(self) -> frozenset[str] | None:
        """The Kafka source allow-list as a set; None when unset or blank (compose's
        ``${VAR:-}``): everyone allowed."""
        listed = (self.kafka_allowed_organisations or "").strip()
        if not listed:
            return None
        return frozenset(c.strip() for c in listed.split(",") if c.strip())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone name
        return value

    @property
    def placeholder_pseudonym_key(self) -> bool:
        """Whether the pseudonym key is still the published placeholder (or empty)."""
        return self.pseudonym_key in ("", PLACEHOLDER_PSEUDONYM_KEY)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def future_tolerance(self) -> timedelta:
        return timedelta(seconds=self.future_tolerance_seconds)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """One settings object per process; tests build their own ``Settings`` instead."""
    return Settings()
