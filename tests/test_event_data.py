"""``domain/event_data.py`` is the contract's data models as stored: one ``TypedDict`` per
event type (and per nested model), generated from ``domain.contract.DATA_MODELS``.

The folds read ``event.data`` (the decoded JSON) through these types, so mypy checks
every key and value they use against the contract at no run-time cost. This test fails
when the file and the contract differ; ``.venv/bin/python tests/test_event_data.py``
writes the file again (CONTRIBUTING.md, "Add an event type")."""

from __future__ import annotations

import keyword
import sys
import types
import typing
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.contract import DATA_MODELS

TARGET = Path(__file__).resolve().parent.parent / "domain" / "event_data.py"

HEADER = '''"""The contract's event data as stored: what ``RecordedEvent.data`` holds, per type.

Generated from ``domain.contract.DATA_MODELS`` by ``tests/test_event_data.py`` (which
fails when this file and the contract differ; run it as a script to write this file
again). Do not edit by hand.

``data`` is the JSON the ledger stored (``envelope_content``): enumerations, days,
moments and ids are strings (a value a later contract version adds is still a string),
tuples are lists, and an optional field the publisher left out or sent as null is
absent (``NotRequired``). Types only: the folds ``cast`` ``event.data`` to these, which
costs nothing at run time, and mypy checks each key and value they read.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict
'''


def _name(model: type[BaseModel]) -> str:
    return model.__name__ + ("Data" if model.__name__ in DATA_MODELS else "")


def _json_type(annotation: Any, nested: list[type[BaseModel]]) -> tuple[str, bool]:
    """The stored JSON's type for a field annotation, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _json_type(typing.get_args(annotation)[0], nested)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(args) == 1, annotation
        return _json_type(args[0], nested)[0], True
    if origin is tuple:
        return f"list[{_json_type(typing.get_args(annotation)[0], nested)[0]}]", False
    if origin is dict:
        key, value = (_json_type(a, nested)[0] for a in typing.get_args(annotation))
        return f"dict[{key}, {value}]", False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        nested.append(annotation)
        return _name(annotation), False
    if isinstance(annotation, type) and issubclass(annotation, Enum | str | UUID | date):
        return "str", False  # datetime is a date subclass
    if annotation in (bool, float, int):
        return annotation.__name__, False
    raise AssertionError(f"no stored JSON type for {annotation!r}")


def _typed_dict(model: type[BaseModel], nested: list[type[BaseModel]]) -> str:
    fields = []
    for name, info in model.model_fields.items():
        kind, nullable = _json_type(info.annotation, nested)
        optional = nullable or not info.is_required()
        fields.append((info.alias or name, f"NotRequired[{kind}]" if optional else kind))
    doc = f'    """``{model.__name__}`` data."""' if model.__name__ in DATA_MODELS else ""
    if all(key.isidentifier() and not keyword.iskeyword(key) for key, _ in fields):
        body = [f"    {key}: {kind}" for key, kind in fields]
        lines = [f"class {_name(model)}(TypedDict):", *([doc, ""] if doc else []), *body]
        return "\n".join(lines)
    items = "".join(f'\n        "{key}": {kind},' for key, kind in fields)
    return f'{_name(model)} = TypedDict(\n    "{_name(model)}",\n    {{{items}\n    }},\n)'


def render() -> str:
    """The module's source: nested models first (each once), then each type's data."""
    parts: list[str] = []
    done: set[type[BaseModel]] = set()

    def emit(model: type[BaseModel]) -> None:
        nested: list[type[BaseModel]] = []
        text = _typed_dict(model, nested)
        for inner in nested:
            if inner not in done:
                done.add(inner)
                emit(inner)
        parts.append(text)

    for model in DATA_MODELS.values():
        done.add(model)
        emit(model)
    names = "".join(f'\n    "{n}",' for n in sorted(_name(m) for m in DATA_MODELS.values()))
    by_type = "".join(f'\n    "{t}": {_name(m)},' for t, m in DATA_MODELS.items())
    tail = (
        f"# Each event type's data type, by the type's name.\n"
        f"DATA: dict[str, object] = {{{by_type}\n}}\n\n__all__ = [{names}\n]"
    )
    return HEADER + "\n\n" + "\n\n\n".join(parts) + "\n\n\n" + tail + "\n"


def test_the_stored_data_types_are_the_contracts() -> None:
    assert TARGET.read_text() == render(), "run: .venv/bin/python tests/test_event_data.py"


def test_every_event_type_has_its_data_type() -> None:
    from domain import event_data

    assert set(event_data.DATA) == set(DATA_MODELS)
    for kind, model in DATA_MODELS.items():
        typed = event_data.DATA[kind]
        assert set(typed.__annotations__) == {f.alias or n for n, f in model.model_fields.items()}


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
