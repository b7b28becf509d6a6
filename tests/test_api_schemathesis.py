"""Schemathesis over every operation of the live app on real PostgreSQL: no 5xx, and every
response conforms to the OpenAPI document (status code, media type, body schema).

The app runs in-process (ASGI) on the test's own database, seeded with a small journey
whose ids are the ones the document's examples use, so the explicit examples reach the
2xx paths; generated cases then probe the rest. Requests carry an admin key (every
operation is allowed); the authorisation matrix is tested in test_api_authz.py.
Examples are bounded so the whole run stays well under two minutes on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.models.events import EXAMPLE_ENVELOPE
from domain.ledger import Ledger
from domain.settings import Settings
from tests.envelopes import envelope, later
from tests.fixtures_api import auth

# Generates thousands of requests against the whole API.
pytestmark = pytest.mark.slow

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}


# The document is the app's own (built without a database); each test then calls an app
# on that test's database. (schemathesis' lazy ``from_fixture`` loader does not run under
# pytest 9.2, whose nodes no longer have ``_nodeid``.)
# The coverage phase would send every boundary of each of the 26 envelope types to
# POST /v1/events (over 8,000 cases, most of the run); that operation gets the examples
# and fuzzing phases, every other operation all three (but the alerts' SSE stream).
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path": "/v1/events",
                "include-method": "POST",
                "phases": {"coverage": {"enabled": False}},
            },
            # An SSE stream never ends, so there is no response to validate; it is tested
            # over real TCP in test_api_alerts.py.
            {"include-path": "/v1/coordinators/{id}/alerts/stream", "enabled": False},
        ]
    }
)
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi(), config=CONFIG)


@pytest.fixture
def live_app(
    ledger: Ledger, api_settings: Settings, publish: Callable, catch_up: Callable
) -> Iterator[FastAPI]:
    """The app on this test's database, started, with a small journey recorded."""
    app = create_app(api_settings, ledger)
    publish(
        envelope(),  # NHS 9434765919, the documents' example number
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope("Admitted", at=later(2), organisation="RXH01", setting="acute"),
        {**EXAMPLE_ENVELOPE, "data": {**EXAMPLE_ENVELOPE["data"], "from_id": "N100"}},
    )
    catch_up()
    with TestClient(app):  # run the start-up migrations once
        pass
    yield app


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, live_app: FastAPI):
    case.call_and_validate(
        app=live_app,
        headers=auth("admin"),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
