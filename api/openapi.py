"""The OpenAPI document: FastAPI's, plus the shapes FastAPI cannot see.

Problems and publish results are written as plain JSON (no response model on those
paths, for speed and for RFC 9457's media type), and the envelope is validated by the
domain contract, not by FastAPI; their schemas are added here as components, so the
document describes every request and response with an example.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.models.events import BatchResult, ItemResult, envelope_schema
from api.problems import Problem
from domain.settings import Settings

REF = "#/components/schemas/{model}"

DESCRIPTION = """\
HTTP interface to the care-journey ledger: publishers append events, auditors read and
replay a person's record and verify its hash chain, coordinators read who coordinates a
person and their journey. Every person-level read is written to the access log.

Authenticate with `Authorization: Bearer <API key>` (keys from `carejourney keys create`).
Errors are RFC 9457 `application/problem+json`.
"""

TAGS = [
    {"name": "publishers", "description": "Append events; read the status of your events."},
    {
        "name": "auditors",
        "description": "A person's complete record, replay, verification, and the access log.",
    },
    {
        "name": "coordinators",
        "description": "Who coordinates a person, their journey, care "
        "plans, caseloads and the unassigned.",
    },
    {
        "name": "evaluators",
        "description": "Population measures: pseudonymised, small numbers "
        "suppressed (docs/measures.md).",
    },
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]


def component_ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _add(components: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema


def install(app: FastAPI, settings: Settings) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=DESCRIPTION,
            routes=app.routes,
            tags=TAGS,
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, ItemResult, BatchResult):
            _add(components, model)
        envelope, defs = envelope_schema(REF)
        components.update(defs)
        components["Envelope"] = envelope
        body = document["paths"]["/v1/events"]["post"]["requestBody"]
        body["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] = settings.batch_max
        app.openapi_schema = document
        return document

    # FastAPI's documented way to extend the schema is to replace app.openapi.
    app.openapi = build  # type: ignore[method-assign]
