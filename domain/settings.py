"""Every setting of the ledger, in one place.

All names are read from the environment with the ``CAREJOURNEY_`` prefix (plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``), so the README, ``compose.yaml`` and the code
cannot drift apart: the compose test reads this object.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """The ledger's configuration; unset database URL means the embedded server."""

    model_config = SettingsConfigDict(env_prefix="CAREJOURNEY_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="libpq URL of a PostgreSQL server; unset starts the embedded one.",
    )
    test_database_url: str | None = Field(
        default=None,
        description="Server the test suite uses; unset starts an embedded one for the run.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".carejourney",
        description="Folder for the embedded PostgreSQL data (gitignored).",
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
        default="change-me-pseudonym-key",
        description="Secret for evaluator pseudonyms (HMAC-SHA-256).",
    )
    api_keys_file: Path | None = Field(default=None, description="File of hashed API keys.")
    batch_max: int = Field(default=5_000, description="Largest batch accepted in one append.")

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
    consumer_group: str = "carejourney-ledger"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone name
        return value

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
