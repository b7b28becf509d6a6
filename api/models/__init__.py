"""Response (and documented request) models: the OpenAPI schema, with an example each."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def example(model: type[BaseModel]) -> Any:
    """The model's first documented example (``json_schema_extra["examples"][0]``)."""
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(examples, list) or not examples:
        raise TypeError(f"{model.__name__} documents no examples")
    return examples[0]
