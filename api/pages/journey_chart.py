"""The journey picture: where each mark of the journey page's SVG goes.

Pure geometry, no HTML: the template draws what this computes. Top to bottom: a time
axis, the coordinator band (one segment per interval of ``coordinator_intervals``:
named coordinators coloured by role, stretches with no named coordinator hatched red,
handoffs marked), the care-plan milestones, then one lane per setting with each event
as a dot (coloured by kind; hollow when retracted or cancelled) and admission spells as
bars in the acute lane. Dots that would overlap in a lane are spread over three
sub-rows, so 300 events stay readable; every mark has a tooltip and links to its row
in the events table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.contract import Setting

WIDTH = 1120
LEFT = 150
RIGHT = 24
AXIS_Y = 28
BAND_Y = 44
BAND_H = 26
PLAN_Y = 86
PLAN_H = 24
LANES_Y = 124
LANE_H = 34
DOT_R = 4.2
SUBROWS = (-9.0, 0.0, 9.0)

# One lane per setting of the contract, in its order; a lane's label is its setting in
# words, the hospital's saying what "acute" means.
LANES = tuple(setting.value for setting in Setting)
LANE_NAMES = {lane: lane.replace("_", " ").capitalize() for lane in LANES} | {
    Setting.ACUTE.value: "Acute (hospital)"
}
KIND_COLOURS = {
    "journey": "#3b3b3b",
    "identification": "#8e44ad",
    "referral": "#e08214",
    "coordination": "#2166ac",
    "hospital": "#b2182b",
    "contact": "#1b7837",
    "care_plan": "#c79a00",
    "care_team": "#5e3c99",
    "carer": "#c51b7d",
    "outcome": "#4d9221",
    "correction": "#888888",
    "other": "#666666",
}
ROLE_COLOURS = {
    "gp": "#4575b4",
    "practice_nurse": "#74add1",
    "specialist_nurse": "#5aae61",
    "community_nurse": "#1a9850",
    "occupational_therapist": "#a6761d",
    "mental_health_professional": "#9970ab",
    "social_worker": "#d6604d",
    "voluntary_sector_adviser": "#e08214",
    "other": "#878787",
}
METHOD_COLOURS = {
    "emergency": "#d73027",
    "elective": "#4575b4",
    "maternity": "#c51b7d",
    "transfer": "#7b3294",
}
PLAN_MARKS = {
    "CarePlanAgreed": "agreed",
    "CarePlanRevised": "revised",
    "CarePlanReviewed": "reviewed",
    "CarePlanClosed": "closed",
}


@dataclass
class Chart:
    width: int
    height: int
    ticks: list[dict[str, Any]] = field(default_factory=list)
    band: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)
    lanes: list[dict[str, Any]] = field(default_factory=list)
    spells: list[dict[str, Any]] = field(default_factory=list)
    dots: list[dict[str, Any]] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


class Scale:
    """Occurred time -> x."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.span = max((end - start).total_seconds(), 1.0)

    def x(self, moment: datetime) -> float:
        fraction = (moment - self.start).total_seconds() / self.span
        return round(LEFT + fraction * (WIDTH - LEFT - RIGHT), 1)

    def clip(self, moment: datetime) -> float:
        return self.x(min(max(moment, self.start), self.end))

    def inside(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def window(
    timeline: list[dict[str, Any]],
    intervals: list[dict[str, Any]],
    zone: ZoneInfo,
    first: date | None,
    last: date | None,
) -> tuple[datetime, datetime]:
    """The time shown: the requested local dates, else the whole journey plus a margin."""
    moments = [_time(e["occurred_at"]) for e in timeline]
    moments += [_time(i["valid_from"]) for i in intervals]
    known = [m for m in moments if m is not None]
    low = min(known) if known else datetime.now(zone) - timedelta(days=30)
    high = max(known) if known else datetime.now(zone)
    margin = max((high - low) * 0.03, timedelta(days=2))
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone) if first else low - margin
    end = (
        datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        if last
        else high + margin
    )
    if end <= start:
        end = start + timedelta(days=1)
    return start, end


def _ticks(scale: Scale, zone: ZoneInfo) -> list[dict[str, Any]]:
    days = scale.span / 86400
    out = []
    local = scale.start.astimezone(zone)
    if days <= 62:
        day = local.date()
        while True:
            moment = datetime.combine(day, datetime.min.time(), tzinfo=zone)
            if moment > scale.end:
                break
            if moment >= scale.start and (day.weekday() == 0 or days <= 14):
                out.append(
                    {"x": scale.x(moment), "label": day.strftime("%d %b"), "major": day.day == 1}
                )
            day += timedelta(days=1)
        return out
    step = 1 if days <= 3 * 366 else 3 if days <= 8 * 366 else 12
    year, month = local.year, local.month
    while True:
        moment = datetime(year, month, 1, tzinfo=zone)
        if moment > scale.end:
            break
        if moment >= scale.start and (month - 1) % step == 0:
            label = str(year) if month == 1 else moment.strftime("%b")
            out.append({"x": scale.x(moment), "label": label, "major": month == 1})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _anchored(ticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labels near the right edge end at their tick instead of running off the chart."""
    for tick in ticks:
        end = tick["x"] > WIDTH - RIGHT - 36
        tick["anchor"], tick["lx"] = ("end", tick["x"] - 3) if end else ("start", tick["x"] + 3)
    return ticks


def build(
    timeline: list[dict[str, Any]],
    spells: list[dict[str, Any]],
    intervals: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    zone: ZoneInfo,
    first: date | None = None,
    last: date | None = None,
) -> Chart:
    """Every mark of the journey picture (module docstring)."""
    start, end = window(timeline, intervals, zone, first, last)
    scale = Scale(start, end)
    lanes = list(LANES) + sorted({e["setting"] for e in timeline} - set(LANES))
    lane_y = {name: LANES_Y + i * LANE_H + LANE_H / 2 for i, name in enumerate(lanes)}
    chart = Chart(WIDTH, int(LANES_Y + len(lanes) * LANE_H + 30), start=start, end=end)
    chart.ticks = _anchored(_ticks(scale, zone))
    chart.lanes = [
        {
            "name": name,
            "label": LANE_NAMES.get(name, name.replace("_", " ")),
            "y": lane_y[name] - LANE_H / 2,
            "mid": lane_y[name],
            "even": i % 2 == 0,
        }
        for i, name in enumerate(lanes)
    ]
    _band(chart, scale, intervals, zone)
    _spells(chart, scale, spells, lane_y["acute"], zone)
    _dots(chart, scale, timeline, lane_y, zone)
    _milestones(chart, scale, timeline, plans, zone)
    return chart


def _band(chart: Chart, scale: Scale, intervals: list[dict[str, Any]], zone: ZoneInfo) -> None:
    for interval in intervals:
        begin = _time(interval["valid_from"])
        until = _time(interval["valid_to"]) or scale.end
        if begin is None or until <= scale.start or begin >= scale.end or until <= begin:
            continue
        x0, x1 = scale.clip(begin), scale.clip(until)
        named = bool(interval["named"])
        who = (
            f"{interval['coordinator_id']} ({interval['role'].replace('_', ' ')}, "
            f"{interval['organisation']})"
        )
        since = _stamp(begin, zone)
        to = _stamp(_time(interval["valid_to"]), zone) if interval["valid_to"] else "now"
        chart.band.append(
            {
                "x": x0,
                "w": max(x1 - x0, 1.0),
                "named": named,
                "colour": ROLE_COLOURS.get(interval["role"], "#878787") if named else "#fde0dd",
                "label": interval["coordinator_id"] if named and x1 - x0 > 60 else "",
                "later": bool(interval.get("recorded_later")),
                "title": (
                    f"Named coordinator {who}"
                    if named
                    else f"No named coordinator (practice default {interval['organisation']})"
                )
                + f": {since} to {to}"
                + _recorded(interval, zone),
            }
        )
        if interval.get("opened_by_type") == "CoordinatorHandedOff" and scale.inside(begin):
            chart.handoffs.append({"x": x0, "title": f"Handoff to {who} at {since}"})


def _recorded(interval: dict[str, Any], zone: ZoneInfo) -> str:
    """Who recorded the change that opened the interval, when, and why (its provenance)."""
    if "opened_recorded_at" not in interval:
        return ""
    when = _stamp(_time(interval["opened_recorded_at"]), zone)
    why = f"; reason: {interval['reason']}" if interval.get("reason") else ""
    by, position = interval["publisher"], interval["opened_position"]
    return f" (recorded {when} by {by}, position {position}{why})"


def _spells(
    chart: Chart, scale: Scale, spells: list[dict[str, Any]], mid: float, zone: ZoneInfo
) -> None:
    for spell in spells:
        begin = _time(spell["admitted_at"])
        until = _time(spell["discharged_at"]) or scale.end
        if begin is None or until < scale.start or begin > scale.end:
            continue
        x0, x1 = scale.clip(begin), scale.clip(until)
        stay = (
            f"{spell['length_of_stay_days']} days"
            if spell["length_of_stay_days"] is not None
            else "still in"
        )
        out = (
            f"discharged {_stamp(_time(spell['discharged_at']), zone)} to "
            f"{str(spell['destination']).replace('_', ' ')}"
            if spell["discharged_at"]
            else "not discharged"
        )
        chart.spells.append(
            {
                "x": x0,
                "w": max(x1 - x0, 6.0),
                "y": mid - 13,
                "h": 26,
                "colour": METHOD_COLOURS.get(spell["method"], "#b2182b"),
                "open": spell["discharged_at"] is None,
                "title": f"{spell['method'].capitalize()} admission to {spell['hospital']} "
                f"{_stamp(begin, zone)}, {out} ({stay})",
            }
        )


def _dots(
    chart: Chart,
    scale: Scale,
    timeline: list[dict[str, Any]],
    lane_y: dict[str, float],
    zone: ZoneInfo,
) -> None:
    last_x: dict[tuple[str, int], float] = {}
    for event in timeline:
        moment = _time(event["occurred_at"])
        if moment is None or not scale.inside(moment):
            continue
        x = scale.x(moment)
        lane = event["setting"]
        row = next(
            (i for i in range(len(SUBROWS)) if x - last_x.get((lane, i), -1e9) >= 2 * DOT_R + 1),
            min(range(len(SUBROWS)), key=lambda i: last_x.get((lane, i), -1e9)),
        )
        last_x[(lane, row)] = x
        standing = event["status"] == "recorded"
        chart.dots.append(
            {
                "x": x,
                "y": lane_y[lane] + SUBROWS[row],
                "seq": event["seq"],
                "colour": KIND_COLOURS.get(event["kind"], KIND_COLOURS["other"]),
                "hollow": not standing,
                "later": bool(event.get("recorded_later")),
                "title": f"{_stamp(moment, zone)} {event['type']}: {event['summary']}"
                + ("" if standing else f" ({event['status']})"),
            }
        )


def _milestones(
    chart: Chart,
    scale: Scale,
    timeline: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    zone: ZoneInfo,
) -> None:
    y = PLAN_Y + PLAN_H / 2
    for event in timeline:
        mark = PLAN_MARKS.get(event["type"])
        moment = _time(event["occurred_at"])
        if mark is None or moment is None or event["status"] != "recorded":
            continue
        if scale.inside(moment):
            chart.milestones.append(
                {
                    "x": scale.x(moment),
                    "y": y,
                    "mark": mark,
                    "seq": event["seq"],
                    "title": f"{_stamp(moment, zone)} {event['summary']}",
                }
            )
    for plan in plans:
        if plan["status"] != "active":
            continue
        due = datetime.combine(
            date.fromisoformat(plan["review_due"]), datetime.min.time(), tzinfo=zone
        )
        if scale.inside(due):
            overdue = plan["review_overdue"]
            chart.milestones.append(
                {
                    "x": scale.x(due),
                    "y": y,
                    "mark": "overdue" if overdue else "due",
                    "seq": None,
                    "title": f"Care plan {plan['plan_id']} review due "
                    f"{plan['review_due']}" + (" (overdue)" if overdue else ""),
                }
            )


def _stamp(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
