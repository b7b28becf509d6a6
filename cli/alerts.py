"""``carejourney alerts COORDINATOR_ID`` (the worklist) and ``carejourney alerts publish``
(the Kafka publisher of the alert feed); docs/alerts.md."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.console import err, fail, ledger_session, out
from cli.options import AsJson, group
from consumers.alerts_topic import Published, alert_publisher
from consumers.broker import Broker
from consumers.ledger_topic import ledger_publisher
from consumers.topic_publisher import TopicPublisher
from domain.settings import get_settings
from projections import log, worklist

logger = logging.getLogger(__name__)

PUBLISH = "publish"


log_app = group("The ledger as a subscription: publish every recorded event to Kafka.")


def register(app: typer.Typer) -> None:
    app.add_typer(log_app, name="log")
    app.command(
        help="A coordinator's open alerts and their team queue's (by due time), or, as "
        "'alerts publish', the Kafka publisher of every alert change "
        "(CAREJOURNEY_ALERTS_TOPIC, exactly once in effect)."
    )(alerts)


def alerts(
    coordinator_id: Annotated[
        str,
        typer.Argument(
            metavar="COORDINATOR_ID",
            help="The professional's id, or 'publish' to run the Kafka publisher.",
        ),
    ],
    status: Annotated[str, typer.Option(help="open, closed or all (as visible now).")] = "open",
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most alerts shown.")] = 200,
    poll: Annotated[
        float, typer.Option(min=0.05, help="publish: seconds between looks when idle.")
    ] = 0.5,
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="publish: most changes sent per batch.")
    ] = 500,
) -> None:
    if coordinator_id == PUBLISH:
        publish(poll, batch)
        return
    if status not in worklist.STATUSES:
        fail(f"--status must be one of {', '.join(worklist.STATUSES)}")
    with ledger_session() as ledger, ledger.connection() as conn:
        orgs = worklist.organisations_of(conn, coordinator_id)
        rows, _ = worklist.alerts(
            conn, coordinator_id, orgs, status=status, limit=limit, anywhere=True
        )
    shown = [{k: v for k, v in r.items() if k != "patient_id"} for r in rows]
    if as_json:
        out.print_json(json.dumps({"coordinator_id": coordinator_id, "alerts": shown}, default=str))
        return
    table = Table(title=f"{status} alerts of {coordinator_id} and team queues {', '.join(orgs)}")
    for column in ("due", "kind", "holder", "detail", "status"):
        table.add_column(column)
    for r in shown:
        holder = f"team {r['organisation']}" if r["team_queue"] else str(r["coordinator_id"])
        table.add_row(_when(r["due"] or r["opened_at"]), r["kind"], holder, r["detail"], _status(r))
    out.print(table)


def _when(value: Any) -> str:
    return str(value)[:16].replace("T", " ")


def _status(row: dict[str, Any]) -> str:
    if row["status"] == "closed":
        return f"closed ({row['close_reason']})"
    return "open" + (f", seen by {row['acknowledged_by']}" if row["acknowledged_by"] else "")


@log_app.command("publish")
def publish_log(
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between looks when idle.")] = 0.5,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Most events per batch.")] = 500,
) -> None:
    """Every recorded event to CAREJOURNEY_LEDGER_TOPIC in position order, keyed by the
    person's pseudonym, exactly once in effect (docs/alerts.md); SIGTERM/SIGINT stop it."""
    settings = get_settings()
    if not settings.ledger_topic:
        fail("set CAREJOURNEY_LEDGER_TOPIC to the topic to publish the ledger to")
    try:
        broker = Broker.from_settings(settings)
    except ValueError as exc:
        fail(str(exc))
    with ledger_session() as ledger:
        url, loads = ledger.database_url, log.state_loader(ledger.mapper)
    run(
        ledger_publisher(url, broker, settings.ledger_topic, settings.pseudonym_key, loads, batch),
        poll,
        "ledger",
    )


def publish(poll: float, batch: int) -> None:
    """Publish the alert feed until SIGTERM/SIGINT."""
    settings = get_settings()
    try:
        broker = Broker.from_settings(settings)
    except ValueError as exc:
        fail(str(exc))
    with ledger_session() as ledger:
        url = ledger.database_url
    run(alert_publisher(url, broker, settings.alerts_topic, batch), poll, "alerts")


def run(publisher: TopicPublisher, poll: float, what: str) -> None:
    """Until SIGTERM/SIGINT; retries with backoff while Kafka or PostgreSQL are away."""
    settings = get_settings()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def on_batch(done: Published) -> None:
        err.print(
            f"{what}: published {done.sent} (found {done.skipped} already sent), seq {done.seq}"
        )

    backoff = 1.0
    while not stop.is_set():
        try:
            publisher.run(stop, poll, on_batch)
        except Exception as exc:  # the broker or the database went away: retry
            logger.warning("%s publisher: %s; retrying in %.0fs", what, exc, backoff)
            publisher.recovered = False  # what reached the topic is unknown again
            stop.wait(backoff)
            backoff = min(backoff * 2, settings.consumer_max_backoff_seconds)
        else:
            break
