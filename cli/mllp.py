"""``carejourney mllp``: the HL7 v2 MLLP listener (``consumers/mllp.py``, docs/adt.md).

Only settings and flags are turned into a listener here; SIGINT/SIGTERM stop it at any
point safely, since nothing is acknowledged before it has committed.
"""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from cli.console import err, ledger_session
from cli.options import host_option, port_option
from consumers import mllp
from domain.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("mllp")(listen)


def listen(
    host: Annotated[str | None, host_option("mllp_host")] = None,
    port: Annotated[int | None, port_option("mllp_port")] = None,
) -> None:
    """Receive HL7 v2 ADT messages over MLLP; ACK each one after it has committed.

    AA: recorded, a resend of a recorded message, or an A08 noted. AE: refused for its
    content, with the reason `adt import` prints in ERR. AR: unreadable, HL7 version not
    2.x, not ADT or an unsupported trigger. While PostgreSQL is down, connections close
    without an ACK so the sender resends.
    """
    settings = get_settings()
    host = host or settings.mllp_host
    port = settings.mllp_port if port is None else port
    # SIGTERM (docker stop) ends the process like SIGINT: nothing uncommitted was ACKed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with ledger_session() as ledger:
        err.print(f"MLLP on {host}:{port} (max {settings.mllp_max_bytes} bytes per message)")
        mllp.run(ledger, settings, host, port)
