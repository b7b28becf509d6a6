"""The ``carejourney`` command line: one root, one sub-module of commands per concern.

Commands are interfaces to the same services the HTTP API uses; none holds domain logic.

Running one command imports only the sub-module that registers it (``COMMANDS``):
importing them all (FastAPI, kafka-python, the ADT and FHIR stacks) was about a second
of every command's start-up, a tenth of ``ingest``'s time for 100,000 envelopes.
``app`` (what the tests invoke, and ``--help``) is the whole command line.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import typer

# The sub-modules, in the order their commands are listed by ``--help``.
MODULES = (
    "ledger",
    "projections",
    "adt",
    "serve",
    "keys",
    "consume",
    "measures",
    "transparency",
    "fhir",
    "mllp",
    "alerts",
    "optout",
    "retention",
    "database",
)
# Each top-level command or group and the sub-module that registers it
# (tests/test_cli_app.py holds this equal to what the modules register).
COMMANDS = {
    "demo": "ledger",
    "ingest": "ledger",
    "history": "ledger",
    "verify": "ledger",
    "erase": "ledger",
    "projections": "projections",
    "coordinator": "projections",
    "journey": "projections",
    "adt": "adt",
    "serve": "serve",
    "keys": "keys",
    "consume": "consume",
    "measures": "measures",
    "checkpoint": "transparency",
    "proof": "transparency",
    "audit": "transparency",
    "fhir": "fhir",
    "mllp": "mllp",
    "log": "alerts",
    "alerts": "alerts",
    "optout": "optout",
    "retention": "retention",
    "db": "database",
}


def build(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The command line with the commands of ``modules``."""
    root = typer.Typer(
        name="carejourney",
        help="Event-sourced care-journey ledger: record, replay, verify and measure care journeys.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    if len(modules) < len(MODULES):
        # A group even with one command registered: typer would otherwise make a lone
        # command the root, and ``carejourney consume ...`` would lose its name.
        root.callback()(lambda: None)
    for name in modules:
        importlib.import_module(f"cli.{name}").register(root)
    return root


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command line, built on first use
        globals()["app"] = whole = build()
        return whole
    raise AttributeError(name)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    module = COMMANDS.get(sys.argv[1]) if len(sys.argv) > 1 else None
    (build((module,)) if module is not None else build())()


if __name__ == "__main__":
    main()
