"""What a read model is, as the runner, the rebuild and the replay see it.

A read model is one module (``projections/care_plans.py`` is a short example) that
declares its row types, its tables and a pure fold, and one ``ReadModel`` value built
from them, listed once in ``projections/catalog.py``. Nothing else lists the models: the
runner, the rebuild and the status command walk the catalog; the replay asks the same
``ReadModel`` values for the folds it shows (through ``Folds``, never the tables).

``handles`` and ``ignores`` are the model's decision about every event type of the
contract (``domain.contract.EventType``): ``tests/test_vocabulary.py`` fails when a type
is in neither or both, so adding an event type makes every model decide.

``Folds`` runs each model's fold at most once per person, so a model built from other
models' results (``quality`` collects everyone's findings) costs no second fold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from domain.contract import EventType
from projections.fold import PersonEvents
from projections.tables import Table

R = TypeVar("R")

Rows = Mapping[str, Sequence[Any]]  # table name -> the person's rows (NamedTuples)
EVERY_TYPE: frozenset[EventType] = frozenset(EventType)


def named(types: str) -> frozenset[EventType]:
    """Event types by name, separated by spaces (a name not in the contract fails at
    import): how a model lists the types it ignores, short enough to read at a glance."""
    return frozenset(EventType(name) for name in types.split())


@dataclass(frozen=True, slots=True, eq=False)
class ReadModel(Generic[R]):
    """One projection: its name (``projection_positions.name``), its tables, the event
    types it handles and deliberately ignores, its fold (one person -> ``R``) and how
    ``R`` becomes rows of its tables."""

    name: str
    tables: tuple[Table, ...]
    handles: frozenset[str]
    ignores: frozenset[str]
    fold: Callable[[PersonEvents, Folds], R]
    rows: Callable[[R], Rows]

    def __repr__(self) -> str:
        return f"ReadModel({self.name!r})"


@dataclass(slots=True)
class Folds:
    """The results of the read models' folds for one person, each computed once."""

    person: PersonEvents
    done: dict[str, Any] = field(default_factory=dict)

    def of(self, model: ReadModel[R]) -> R:
        if model.name not in self.done:
            self.done[model.name] = model.fold(self.person, self)
        result: R = self.done[model.name]
        return result
