"""Projection commands: run, status, rebuild, and the person-level reads ``coordinator``
and ``journey`` (docs/projections.md)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli.console import (
    aware_option,
    err,
    fail,
    ledger_session,
    nhs_argument,
    out,
    progress,
    registered,
)
from cli.options import AsJson, NhsNumber, as_of_option, group
from domain.contract import Setting
from domain.ledger import Ledger
from projections import catalog, queries
from projections.rebuild import RebuildBusy, rebuild
from projections.runner import Runner, Step

projections_app = group(
    "Read models built from the ledger: run (catch up and follow), status, rebuild."
)


def register(app: typer.Typer) -> None:
    app.add_typer(projections_app, name="projections")
    app.command()(coordinator)
    app.command()(journey)


def catch_up(ledger: Ledger, *, batch: int = 20_000) -> int:
    """Run every projection once up to the ledger head (``projections run --once``);
    returns the events applied. ``demo`` calls it so the demo's reads are current."""
    runner = Runner.for_ledger(ledger, batch_size=batch)
    runner.migrate()
    with _bars(runner) as (on_step, on_build):
        steps = runner.run_once(on_step=on_step, on_build=on_build)
    lag = max(s["lag"] for s in runner.status())
    out.print(f"projections: {len(steps)} batches applied, lag {lag}")
    return lag


@contextmanager
def _bars(runner: Runner) -> Iterator[tuple[Any, Any]]:
    """Progress bars for an initial build and for catching up (on stderr)."""
    start = min(s["position"] for s in runner.status())
    with progress() as bar:
        tasks: dict[str, Any] = {}

        def on_build(done: int, total: int) -> None:
            if "build" not in tasks:
                tasks["build"] = bar.add_task("building projections", total=total)
            bar.update(tasks["build"], completed=done, total=total)

        def on_step(step: Step, head: int) -> None:
            if "catch" not in tasks:
                tasks["catch"] = bar.add_task("catching up", total=max(1, head - start))
            bar.update(tasks["catch"], completed=step.upto - start, total=max(1, head - start))

        yield on_step, on_build


@projections_app.command("run")
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Exit when caught up instead of following the ledger.")
    ] = False,
    batch: Annotated[
        int, typer.Option(min=1, help="Ledger events per batch (one transaction each).")
    ] = 20_000,
    poll: Annotated[
        float, typer.Option(min=0.05, help="Seconds between checks when no notification arrives.")
    ] = 1.0,
) -> None:
    """Catch every projection up with the ledger, then follow it (LISTEN/NOTIFY with
    polling as fallback). SIGINT/SIGTERM stop cleanly after the batch in progress."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ledger_session() as ledger:
        runner = Runner.for_ledger(ledger, batch_size=batch)
        runner.migrate()
        with _bars(runner) as (on_step, on_build):
            runner.run_once(stop, on_step=on_step, on_build=on_build)
        if not once and not stop.is_set():
            err.print(
                f"caught up at position {_head(runner)}; following the ledger (Ctrl-C to stop)"
            )

            def report(step: Step, head: int) -> None:
                err.print(
                    f"applied positions {step.after + 1}..{step.upto} "
                    f"({step.people} people), lag {max(0, head - step.upto)}",
                    highlight=False,
                )

            runner.follow(stop, poll_seconds=poll, on_step=report)
        _print_status(runner.status())


def _head(runner: Runner) -> int:
    return max(s["head"] for s in runner.status())


@projections_app.command("status")
def status(
    as_json: AsJson = False,
) -> None:
    """Each projection's position, the ledger head and the lag (head - position)."""
    with ledger_session() as ledger:
        rows = Runner.for_ledger(ledger).status()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    _print_status(rows)


def _print_status(rows: list[dict[str, Any]]) -> None:
    table = Table(title="projections")
    for column in ("name", "position", "head", "lag", "updated", "rebuilt"):
        table.add_column(
            column, justify="right" if column in ("position", "head", "lag") else "left"
        )
    for r in rows:
        table.add_row(
            r["name"],
            str(r["position"]),
            str(r["head"]),
            str(r["lag"]),
            _short(r["updated_at"]),
            _short(r["rebuilt_at"]),
        )
    out.print(table)


def _short(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


@projections_app.command("rebuild")
def rebuild_command(
    name: Annotated[
        str | None,
        typer.Argument(help=f"One projection ({', '.join(catalog.NAMES)}); omit to rebuild all."),
    ] = None,
) -> None:
    """Build projections from position 0 into new tables, then swap them in atomically
    (reads keep working meanwhile)."""
    if name is not None and name not in catalog.NAMES:
        fail(f"unknown projection {name!r}; known: {', '.join(catalog.NAMES)}")
    with ledger_session() as ledger:
        runner = Runner.for_ledger(ledger)
        with progress() as bar:
            task = bar.add_task(f"rebuilding {name or 'all projections'}", total=None)
            try:
                report = rebuild(
                    runner,
                    [name] if name else None,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            except RebuildBusy as exc:
                fail(str(exc), code=1)
        assert report is not None
        out.print(
            f"rebuilt {', '.join(report.names)}: {report.events} events of "
            f"{report.people} people in {report.seconds:.1f}s "
            f"({report.rate:,.0f} events/s); swapped in at position {report.position}"
        )


# -- person-level reads -----------------------------------------------------------------


def coordinator(
    nhs_number: NhsNumber,
    as_of: Annotated[datetime | None, as_of_option("Who coordinated")] = None,
    as_json: AsJson = False,
) -> None:
    """Who coordinates the person's care now (or at --as-of), and the intervals so far."""
    as_of = aware_option(as_of, "--as-of")
    with ledger_session() as ledger:
        patient = registered(ledger, nhs_argument(nhs_number), "coordinator")
        with ledger.connection() as conn:
            now = queries.current_coordinator(conn, patient)
            if now is None:
                fail(
                    "the projections do not know this person yet: run "
                    "'carejourney projections run --once'",
                    code=1,
                )
            at = queries.coordinator_as_of(conn, patient, as_of) if as_of else None
            intervals = queries.coordinator_intervals(conn, patient)
    if as_json:
        out.print_json(json.dumps({"current": now, "as_of": at, "intervals": intervals}))
        return
    if at is not None and as_of is not None:
        out.print(f"as of {as_of.isoformat()}: {_who(at['coordinator'], at['named'])}")
    else:
        out.print(
            f"now: {_who(now['coordinator'], now['named'])}"
            + (f" since {now['since'][:16]}" if now["since"] else "")
        )
        if now["journey"] == "open" and not now["named"]:
            out.print(f"no named coordinator since {(now['unnamed_since'] or '')[:16]}")
    out.print(f"journey {now['journey']}; {now['handoffs']} handoffs")
    table = Table(title="coordinator intervals")
    columns = ("from", "to", "coordinator", "role", "organisation", "named", "via")
    for column in (*columns, "reason", "recorded", "by", "position"):
        table.add_column(column)
    for i in intervals:
        # Who recorded the change, and when the ledger learnt of it (transaction time):
        # "from" is when it occurred; the position finds it in `audit bundle`.
        by = i["publisher"] + (f" {i['recorder_id']}" if i["recorder_id"] else "")
        by += f" ({i['source_system']}{', ' + i['way_in'] if i['way_in'] else ''})"
        table.add_row(
            i["valid_from"][:16],
            (i["valid_to"] or "now")[:16],
            i["coordinator_id"],
            i["role"],
            i["organisation"],
            "yes" if i["named"] else "default",
            i["opened_by_type"],
            i["reason"] or "",
            i["opened_recorded_at"][:19],
            by,
            str(i["opened_position"]),
        )
    out.print(table)


def _who(who: dict[str, Any] | None, named: bool) -> str:
    if who is None:
        return "nobody (no open journey)"
    kind = "named coordinator" if named else "registered practice (no named coordinator)"
    return f"{who['id']} ({who['role'].replace('_', ' ')}, {who['organisation']}) — {kind}"


LANES: tuple[str, ...] = tuple(s.value for s in Setting)
LANE_MARKS = {
    "primary_care": "PC",
    "acute": "AC",
    "community": "CO",
    "mental_health": "MH",
    "social_care": "SC",
    "voluntary": "VO",
    "home": "HO",
}
LANE_STYLE = {
    "primary_care": "green",
    "acute": "red",
    "community": "cyan",
    "mental_health": "magenta",
    "social_care": "yellow",
    "voluntary": "blue",
    "home": "white",
}


def journey(
    nhs_number: NhsNumber,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """The person's journey across settings: one line per event in occurred order, a
    lane per setting, retracted and cancelled events struck through; then the spells."""
    with ledger_session() as ledger:
        patient = registered(ledger, nhs_argument(nhs_number), "journey")
        with ledger.connection() as conn:
            entries = queries.timeline(conn, patient)
            spells = queries.spells(conn, patient)
            now = queries.current_coordinator(conn, patient)
    if not entries:
        fail(
            "the projections hold no timeline for this person yet: run "
            "'carejourney projections run --once'",
            code=1,
        )
    if as_json:
        for entry in entries:
            out.print_json(json.dumps(entry), indent=None)
        return
    table = Table(title=f"journey of patient {patient}", box=None, pad_edge=False)
    table.add_column("occurred (UTC)", no_wrap=True)
    for lane in LANES:
        table.add_column(LANE_MARKS[lane], justify="center", style=LANE_STYLE[lane])
    table.add_column("event")
    table.add_column("source", no_wrap=True)
    table.add_column("pos", justify="right")
    for e in entries:
        marks = ["●" if e["setting"] == lane else "·" for lane in LANES]
        summary = Text(e["summary"])
        if e["status"] != "recorded":
            summary = Text(f"{e['summary']} [{e['status']}]", style="strike dim")
        table.add_row(
            e["occurred_at"][:16].replace("T", " "),
            *marks,
            summary,
            e["source_organisation"],
            str(e["position"]),
        )
    out.print(table)
    out.print("lanes: " + ", ".join(f"{LANE_MARKS[x]} {x.replace('_', ' ')}" for x in LANES))
    if spells:
        spell_table = Table(title="admission spells")
        for column in ("admitted", "discharged", "hospital", "method", "destination", "stay"):
            spell_table.add_column(column)
        for s in spells:
            spell_table.add_row(
                s["admitted_at"][:16],
                (s["discharged_at"] or "in hospital")[:16],
                s["hospital"],
                s["method"],
                s["destination"] or "-",
                "-" if s["length_of_stay_days"] is None else f"{s['length_of_stay_days']} days",
            )
        out.print(spell_table)
    if now is not None:
        out.print(f"coordinator now: {_who(now['coordinator'], now['named'])}")
