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
    """The ledger's configuration; unset database URL means the embedded server."""

    model_config = SettingsConfigDict(env_prefix="CAREJOURNEY_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="libpq URL of a PostgreSQL server; unset starts the embedded one.",
    )
    app_database_url: str | None = Field(
        default=None,
        description="Read by `carejourney db app-role` (run as the tables' owner): the "
        "user and password of this libpq URL are the application role it creates, the one "
        'the services\' CAREJOURNEY_DATABASE_URL names (docs/integrity.md, "Roles").',
    )
    test_database_url: str | None = Field(
        default=None,
        description="Server the test suite uses; unset starts an embedded one for the run.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path.cwd() / ".carejourney",
        description="Folder for the embedded PostgreSQL data and the API keys file: "
        "./.carejourney under the current directory (gitignored), wherever the package "
        "is installed.",
    )
    timezone: str = Field(
        default="Europe/London",
        description="Zone in which calendar days are counted and offset-less times are read.",
    )
    future_tolerance_seconds: int = Field(
        default=86_400,
        description="occurred_at may be at most this far after recorded_at.",
    )
    pseudonym_key: str = Field(
        default=PLACEHOLDER_PSEUDONYM_KEY,
        description="Secret for evaluator pseudonyms (HMAC-SHA-256). `serve` and `measures` "
        "refuse the placeholder unless told it is development.",
    )
    allow_placeholder_pseudonym_key: bool = Field(
        default=False,
        description="Development only: let `serve` and `measures` run with the placeholder "
        "pseudonym key (anyone can then recompute the pseudonyms).",
    )
    api_keys_file: Path | None = Field(default=None, description="File of hashed API keys.")
    fhir_export_dir: Path | None = Field(
        default=None,
        description="Where FHIR bulk export files are kept (default <DATA_DIR>/fhir-exports).",
    )
    api_keys: str | None = Field(
        default=None, description="JSON array of hashed API key entries (as in the keys file)."
    )
    api_host: str = Field(default="127.0.0.1", description="Address `carejourney serve` binds.")
    api_port: int = Field(default=8000, description="Port `carejourney serve` listens on.")
    api_workers: int = Field(default=1, description="uvicorn worker processes.")
    api_max_body_bytes: int = Field(
        default=10_485_760, description="Largest HTTP request body accepted (413 above)."
    )
    api_max_headers: int = Field(
        default=100, ge=1, description="Most HTTP request header fields (431 above)."
    )
    api_max_header_bytes: int = Field(
        default=16_384, ge=256, description="Largest HTTP request head in bytes (431 above)."
    )
    care_relationship_days: int = Field(
        default=365,
        ge=1,
        description="A coordinator organisation's care relationship with a person lasts "
        "this many days after its last standing fact about them or its coordination ended.",
    )
    rejection_retention_days: int = Field(
        default=30,
        ge=1,
        description="Refused messages (and their dead-letter copies kept here) are purged "
        "after this many days (`carejourney retention run`, and hourly in `consume`).",
    )
    ready_max_lag: int = Field(
        default=10_000, description="/readyz fails when a projection lags the ledger by more."
    )
    batch_max: int = Field(default=5_000, description="Largest batch accepted in one append.")
    late_arrival_days: int = Field(
        default=7,
        description="An event recorded after one of the person's events that occurred more "
        "than this many days after it is flagged as a late arrival (projections).",
    )
    small_number_max: int = Field(
        default=7,
        ge=0,
        description="Evaluator-facing measures suppress counts from 1 to this (0: none).",
    )
    rounding_base: int = Field(
        default=5,
        ge=1,
        description="Evaluator-facing counts not suppressed are rounded to the nearest "
        "multiple of this (1: no rounding).",
    )
    referral_wait_threshold_days: int = Field(
        default=28, ge=0, description="Referral waits: the '% within threshold' threshold."
    )
    alert_unassigned_days: int = Field(
        default=14,
        ge=0,
        description="Alerts: a person without a named coordinator for longer than this "
        "opens an alert in the practice's team queue (projections).",
    )
    session_minutes: int = Field(
        default=30,
        ge=1,
        le=1440,
        description="Lifetime of a browser session cookie (pages sign-in).",
    )

    log_origin: str = Field(
        default="carejourney.local/ledger",
        pattern=r"^[^\s+]+$",
        description="The transparency log's origin line in checkpoints (and the default "
        "signing key name): a schema-less URL, no spaces or '+'.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="File of the Ed25519 checkpoint signing key (default "
        "<DATA_DIR>/checkpoint-signing.key; made on first use on the embedded default).",
    )
    checkpoint_topic: str = Field(
        default="care.checkpoints.v1",
        description="Kafka topic every signed checkpoint is published to.",
    )

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CAREJOURNEY_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Kafka brokers; unset means ingestion is HTTP and file import only.",
    )
    kafka_api_version: str | None = Field(
        default=None, description="Pin kafka-python's api_version, e.g. '2.8' (tansu)."
    )
    events_topic: str = "care.events.v1"
    dead_letter_topic: str = "care.events.v1.dlq"
    adt_topic: str = "care.adt.hl7v2"
    adt_dead_letter_topic: str = "care.adt.hl7v2.dlq"
    ledger_topic: str | None = Field(
        default=None,
        description="Where `carejourney log publish` sends every recorded event in position "
        "order (no identifiers); unset: not published (docs/alerts.md).",
    )
    alerts_topic: str = Field(
        default="care.alerts.v1",
        description="Where `carejourney alerts publish` sends every alert change, keyed by "
        "the coordinator (docs/alerts.md).",
    )
    adt_facilities: dict[str, Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{3,10}$")]] = (
        Field(
            default_factory=dict,
            description="JSON object: HL7 sending facility (MSH-4.1) -> ODS code; an ADT "
            "message from a facility not listed is rejected.",
        )
    )
    adt_code_maps: Path | None = Field(
        default=None,
        description="JSON or YAML file of per-facility code maps: local PV1-2/PV1-4/PV1-36 "
        "codes -> the contract's values (docs/adt.md).",
    )
    adt_identity_key: str = Field(
        default="carejourney-adt-identity-v1",
        description="Secret keying ADT event ids (they are derived from message content "
        "including the patient identifier); set once, before the first message.",
    )
    adt_discharge_ready: dict[str, Any] | None = Field(
        default=None,
        description="JSON object: how this site's A08s say 'ready for discharge' (segment, "
        "flag_field/flag, time_field, reason_field, reasons); unset: A08s are identity "
        "updates only (consumers/discharge_ready.py, docs/alerts.md).",
    )
    mllp_host: str = Field(
        default="127.0.0.1", description="Address `carejourney mllp` binds (0.0.0.0: all)."
    )
    mllp_port: int = Field(default=2575, description="Port `carejourney mllp` listens on.")
    mllp_max_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest MLLP message accepted; a larger one closes its connection.",
    )
    mllp_idle_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="An MLLP connection silent this long (or this slow to send one message "
        "or read one ACK) is closed.",
    )
    consumer_group: str = "carejourney-ledger"
    kafka_allowed_organisations: str | None = Field(
        default=None,
        description="Comma-separated ODS codes Kafka envelopes may name as "
        "source.organisation; unset allows every organisation.",
    )
    consumer_batch_size: int = Field(
        default=2000, ge=1, description="Most Kafka messages recorded in one transaction."
    )
    consumer_batch_bytes: int = Field(
        default=1_048_576, ge=1, description="About the most message bytes in one transaction."
    )
    consumer_max_backoff_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between retries when a service is down."
    )
    consumer_retraction_hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long a Kafka retraction read before its target is held and "
        "retried as new events arrive before it is dead-lettered (0: at once).",
    )

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
