"""The registry of read models: the one list the runner, the rebuild and the status
command walk (the replay folds through the same ``ReadModel`` values).

Each read model is one module declaring its rows, tables, fold and dispatch table, and
one ``ReadModel`` value (``MODEL``); registering it is one line in ``MODELS`` below
(CONTRIBUTING.md, "Add a projection"). Each is tracked by its own position in
``projection_positions``:

===============  ==========================================  =============================
projection       tables                                      fold
===============  ==========================================  =============================
``coordinators`` ``coordinator_intervals``,                  ``projections/coordinators``
                 ``coordination_status``
``timeline``     ``journey_timeline``, ``admission_spells``  ``projections/timeline``
``care_plans``   ``care_plan_status``                        ``projections/care_plans``
``referrals``    ``referral_status``                         ``projections/referrals``
``quality``      ``quality_findings``                        ``projections/quality``
``evaluation``   ``evaluation_contacts``,                    ``projections/evaluation``
                 ``_outcomes``, ``_plan_reviews``,           (the measures' facts)
                 ``_people``
``alerts``       ``alerts``                                  ``projections/alerts``
===============  ==========================================  =============================

``person_rows`` runs each needed fold once per person (``readmodel.Folds``: the quality
model reuses the other folds' findings), which is what the runner and the rebuild write.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from projections import alerts, care_plans, coordinators, evaluation, quality, referrals, timeline
from projections.fold import PersonEvents
from projections.readmodel import Folds, ReadModel
from projections.tables import Table

# The registration: one line per read model, in the order tables are created and listed.
MODELS: tuple[ReadModel[Any], ...] = (
    coordinators.MODEL,
    timeline.MODEL,
    care_plans.MODEL,
    referrals.MODEL,
    quality.MODEL,
    evaluation.MODEL,
    alerts.MODEL,
)
BY_NAME: dict[str, ReadModel[Any]] = {m.name: m for m in MODELS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def tables(names: Collection[str]) -> list[Table]:
    return [t for m in MODELS if m.name in names for t in m.tables]


def person_rows(person: PersonEvents, names: Collection[str]) -> dict[str, tuple[Any, ...]]:
    """Table name -> the person's rows, for the projections named (each fold run once)."""
    out: dict[str, tuple[Any, ...]] = {}
    folds = Folds(person)
    for model in MODELS:
        if model.name in names:
            for name, rows in model.rows(folds.of(model)).items():
                out[name] = tuple(rows)
    return out
