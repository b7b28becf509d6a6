"""The command line's lazy registration: one command imports only its own module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

from cli import app as cli_app

ROOT = Path(__file__).resolve().parent.parent


def test_the_command_table_names_what_each_module_registers() -> None:
    for module in cli_app.MODULES:
        registered = typer.main.get_command(cli_app.build((module,))).commands
        named = {c for c, m in cli_app.COMMANDS.items() if m == module}
        assert set(registered) == named, module
    assert set(typer.main.get_command(cli_app.app).commands) == set(cli_app.COMMANDS)


def test_running_ingest_imports_neither_the_api_nor_kafka() -> None:
    code = (
        "import sys\n"
        "from cli import app\n"
        "sys.argv = ['carejourney', 'ingest', '--help']\n"
        "try:\n"
        "    app.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print('loaded:', sorted(m for m in ('fastapi', 'kafka', 'hl7') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "NDJSON file" in done.stdout  # ingest's own help, under its own name
    assert "loaded: []" in done.stdout


def test_a_lone_module_keeps_its_command_names() -> None:
    """typer makes a lone command the root; the lazy command line must not."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.app", "consume", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "carejourney consume" in done.stdout or "cli.app consume" in done.stdout
