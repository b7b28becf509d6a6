"""One event vocabulary: every read model decides about every event type.

Adding an ``EventType`` fails here until each registered read model lists it as
handled (in its dispatch table) or deliberately ignored (CONTRIBUTING.md)."""

from __future__ import annotations

import pytest

from domain.contract import DATA_MODELS, EVENT_TYPES, EventType
from projections import catalog
from projections.readmodel import ReadModel


def test_the_enum_is_the_contracts_vocabulary() -> None:
    assert {t.value for t in EventType} == set(DATA_MODELS) == set(EVENT_TYPES)
    for kind in EventType:
        assert DATA_MODELS[kind].__name__ == kind.value  # a member finds its model
        assert kind == kind.value and hash(kind) == hash(kind.value)  # plain strings work


@pytest.mark.parametrize("model", catalog.MODELS, ids=lambda m: m.name)
def test_each_read_model_decides_about_every_event_type(model: ReadModel[object]) -> None:
    undecided = set(EventType) - model.handles - model.ignores
    both = model.handles & model.ignores
    unknown = (model.handles | model.ignores) - set(EventType)
    assert not undecided, f"{model.name} neither handles nor ignores {sorted(undecided)}"
    assert not both, f"{model.name} both handles and ignores {sorted(both)}"
    assert not unknown, f"{model.name} names types outside the contract {sorted(unknown)}"


def test_the_registry_names_each_model_and_table_once() -> None:
    names = [m.name for m in catalog.MODELS]
    tables = [t.name for m in catalog.MODELS for t in m.tables]
    assert len(names) == len(set(names)) and len(tables) == len(set(tables))
    assert tuple(names) == catalog.NAMES
    assert all(t.fields[0] == "patient_id" for m in catalog.MODELS for t in m.tables)
