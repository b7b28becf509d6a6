"""Fixtures for the measure tests: record journeys, project them, report on a period."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from domain.ledger import Ledger
from domain.settings import Settings
from projections import measures
from projections.runner import Runner
from tests.journeys import Journey

CHUNK = 500  # appends of a few hundred events (bigger batches are not needed here)


class Measured:
    """Journeys recorded in the test's ledger, projections caught up, reports on demand."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings

    def record(self, *journeys: Journey | list[dict[str, Any]]) -> None:
        envelopes = [e for j in journeys for e in (j.events if isinstance(j, Journey) else j)]
        for start in range(0, len(envelopes), CHUNK):
            result = self.ledger.append_batch(envelopes[start : start + CHUNK])
            bad = [i.as_dict() for i in result.items if i.status not in ("recorded", "duplicate")]
            assert not bad, bad
        runner = Runner.for_ledger(self.ledger)
        runner.migrate()
        runner.run_once()

    def report(self, first: str, last: str, **options: Any) -> dict[str, Any]:
        options.setdefault("unsuppressed", True)
        period = measures.Period.checked(
            date.fromisoformat(first), date.fromisoformat(last), self.settings.zone
        )
        with self.ledger.connection() as conn:
            return measures.report(conn, period, self.settings, **options)


@pytest.fixture
def measured(ledger: Ledger, settings: Settings) -> Measured:
    return Measured(ledger, settings)


def group(report: dict[str, Any], measure: str, name: str = "all") -> dict[str, Any]:
    """One group's values of one measure."""
    found = [g for g in report["measures"][measure]["groups"] if g["group"] == name]
    assert found, f"{measure} has no group {name!r}: " + ", ".join(
        g["group"] for g in report["measures"][measure]["groups"]
    )
    return found[0]


def without_series(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not isinstance(v, list)}
