"""Per-facility code maps: a hospital's local codes for PV1-2, PV1-4 and PV1-36 -> the
contract's values, from the file named by ``CAREJOURNEY_ADT_CODE_MAPS`` (JSON or YAML).

Real feeds send local text (``Matern Ante``, ``DAY CASE``, ``Home``) where the NHS Data
Dictionary has a code. A map says what such a value means, for one sending facility
(MSH-4.1) or for all (``"*"``)::

    RXH:
      admission_method: {"Matern Ante": maternity, "ELEC": elective}
      discharge_destination: {"Home": usual_residence}
      patient_class: {"DAY CASE": day_case}
    "*":
      patient_class: {"DC": day_case}

A value is looked up by its code (component 1) and then by its text (component 2),
exactly and then ignoring case, in the facility's map, then in ``"*"``, then in the
built-in NHS tables (``consumers/adt_codes.py``). A map naming a value the contract does
not have is refused when loaded, naming the file, facility, field and code: a bad map
must stop the importer, not send every message to ``unknown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from domain.contract import AdmissionMethod, DischargeDestination, PatientClass

FIELDS: Final[dict[str, frozenset[str]]] = {
    "admission_method": frozenset(m.value for m in AdmissionMethod),
    "discharge_destination": frozenset(d.value for d in DischargeDestination),
    "patient_class": frozenset(c.value for c in PatientClass),
}
ANY_FACILITY: Final = "*"


class CodeMapError(ValueError):
    """The code map file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class CodeMaps:
    """facility -> field -> local code -> contract value (plus a case-folded index)."""

    maps: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def lookup(self, facility: str, name: str, *keys: str) -> str | None:
        for where in (facility, ANY_FACILITY):
            table = self.maps.get(where, {}).get(name)
            if not table:
                continue
            for key in keys:
                if key and key in table:
                    return table[key]
            folded = {k.casefold(): v for k, v in table.items()}
            for key in keys:
                if key and key.casefold() in folded:
                    return folded[key.casefold()]
        return None


EMPTY: Final = CodeMaps()
_cache: dict[Path, tuple[float, CodeMaps]] = {}


def load(path: Path | None) -> CodeMaps:
    """The maps in ``path`` (none: no maps), re-read when the file changes."""
    if path is None:
        return EMPTY
    try:
        stamp = path.stat().st_mtime
    except OSError as exc:
        raise CodeMapError(f"CAREJOURNEY_ADT_CODE_MAPS: cannot read {path}: {exc}") from None
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    maps = parse(path.read_text(encoding="utf-8"), str(path))
    _cache[path] = (stamp, maps)
    return maps


def parse(text: str, where: str = "code maps") -> CodeMaps:
    """Check and load one map document (JSON is YAML, so one reader does both)."""
    try:
        raw: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        try:
            raw = json.loads(text)
        except ValueError:
            raise CodeMapError(f"{where}: not JSON or YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CodeMapError(f"{where}: expected an object of facilities")
    maps: dict[str, dict[str, dict[str, str]]] = {}
    for facility, fields in raw.items():
        if not isinstance(fields, dict):
            raise CodeMapError(f"{where}: {facility}: expected an object of fields")
        maps[str(facility)] = {}
        for name, table in fields.items():
            if name not in FIELDS:
                raise CodeMapError(
                    f"{where}: {facility}: unknown field {name!r} (known: {', '.join(FIELDS)})"
                )
            if not isinstance(table, dict):
                raise CodeMapError(f"{where}: {facility}.{name}: expected code: value pairs")
            checked: dict[str, str] = {}
            for code, value in table.items():
                if str(value) not in FIELDS[name]:
                    raise CodeMapError(
                        f"{where}: {facility}.{name}: {code!r} -> {value!r} is not a contract"
                        f" value (known: {', '.join(sorted(FIELDS[name]))})"
                    )
                checked[str(code).strip()] = str(value)
            maps[str(facility)][name] = checked
    return CodeMaps(maps)
