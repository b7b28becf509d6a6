"""The published contract: ``GET /v1/schema/envelope``, the envelope's JSON Schema.

No key: a publisher reads it before holding one, and it says nothing about anyone. The
schema is generated once from the contract models (``domain/envelope_schema.py``), the
same text as ``schemas/envelope.v1.json``; what it cannot express (the NHS number's
check digit, the future-time tolerance) is in its ``$comment`` and docs/publishing.md.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from domain.envelope_schema import render

router = APIRouter(prefix="/v1/schema", tags=["publishers"])
MEDIA_TYPE = "application/schema+json"


@lru_cache(maxsize=1)
def _schema_text() -> bytes:
    return render().encode()


@router.get(
    "/envelope",
    summary="The envelope contract v1 as JSON Schema (2020-12)",
    response_class=Response,
    responses={
        200: {
            "content": {
                MEDIA_TYPE: {
                    "schema": {"type": "object"},
                    "example": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "title": "Care-journey ledger envelope, contract v1",
                        "type": "object",
                    },
                }
            }
        }
    },
)
def envelope_schema() -> Any:
    """What ``POST /v1/events``, Kafka and files accept, as a JSON Schema document."""
    return Response(
        _schema_text(),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "public, max-age=3600"},
    )
