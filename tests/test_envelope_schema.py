"""``schemas/envelope.v1.json``: generated from the contract, in sync with it, and agreeing
with ``parse_envelope`` on valid and invalid envelopes (validated by jsonschema-rs, a
2020-12 validator nobody here wrote)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema_rs
import pytest

from domain.contract import (
    EVENT_TYPES,
    ContractError,
    envelope_content,
    parse_envelope,
)
from domain.envelope_schema import NOT_EXPRESSED, SCHEMA_FILE, envelope_schema, render
from domain.integrity import content_hash
from tests.test_contract import EXAMPLES, envelope

SCHEMA = json.loads(SCHEMA_FILE.read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA, validate_formats=True)


def test_the_file_is_generated_from_the_contract() -> None:
    assert SCHEMA_FILE.read_text() == render(), "run: python -m domain.envelope_schema"
    assert envelope_schema() == SCHEMA
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["properties"]["type"]["enum"] == list(EVENT_TYPES)


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_example_is_valid_for_both(type_: str) -> None:
    raw = envelope(type_)
    parse_envelope(raw)
    VALIDATOR.validate(raw)
    by_local_id = {k: v for k, v in raw.items() if k != "nhs_number"}
    by_local_id["local_id"] = {"authority": "RXH", "value": "4012345"}
    parse_envelope(by_local_id)
    VALIDATOR.validate(by_local_id)


def _broken() -> list[tuple[str, dict[str, Any]]]:
    base = envelope("Admitted")
    out = []
    for name, change in [
        ("no person", lambda e: e.pop("nhs_number")),
        ("unknown field", lambda e: e.update(extra=1)),
        ("unknown type", lambda e: e.update(type="Nope")),
        ("version as a string", lambda e: e.update(schema_version="1")),
        ("data of another type", lambda e: e.update(data=EXAMPLES["Transferred"])),
        ("unknown data field", lambda e: e["data"].update(bed="B1")),
        ("bad method", lambda e: e["data"].update(method="urgent")),
        ("bad ods code", lambda e: e["source"].update(organisation="rx1")),
        ("nine digits", lambda e: e.update(nhs_number="943476591")),
        ("empty local id", lambda e: e.update(local_id={"authority": "RXH"})),
        ("not a uuid", lambda e: e.update(event_id="E-1")),
    ]:
        broken = copy.deepcopy(base)
        change(broken)
        out.append((name, broken))
    merge = envelope("PatientsMerged")
    merge["data"] = {"merged_patient_id": "0b8a1c1e-9f6e-4c1a-9d7e-2f6a1b3c4d5e"}
    out.append(("merge naming a patient id", merge))
    return out


@pytest.mark.parametrize(("name", "raw"), _broken(), ids=[n for n, _ in _broken()])
def test_what_the_schema_refuses_the_contract_refuses(name: str, raw: dict[str, Any]) -> None:
    assert not VALIDATOR.is_valid(raw), name
    if name == "merge naming a patient id":
        return  # the contract model allows it in stored content; the ledger refuses it
    with pytest.raises(ContractError):
        parse_envelope(raw)


def test_what_the_schema_cannot_express_is_said_next_to_it() -> None:
    bad_check_digit = envelope("Admitted", nhs_number="9434765918")
    assert VALIDATOR.is_valid(bad_check_digit)  # the schema cannot compute modulus 11
    with pytest.raises(ContractError, match="nhs_number"):
        parse_envelope(bad_check_digit)
    assert any("modulus-11" in n for n in NOT_EXPRESSED)
    assert any("FUTURE_TOLERANCE" in n for n in NOT_EXPRESSED)
    assert "modulus-11" in SCHEMA["$comment"]


def test_local_id_is_not_content_and_old_envelopes_hash_the_same() -> None:
    raw = envelope("Admitted")
    plain = envelope_content(parse_envelope(raw))
    both = envelope_content(
        parse_envelope({**raw, "local_id": {"authority": "RXH", "value": "4012345"}})
    )
    assert plain == both and "local_id" not in plain and "nhs_number" not in plain
    assert content_hash(plain) == content_hash(both)


def test_served_at_v1_schema_envelope_without_a_key(client: Any) -> None:
    response = client.get("/v1/schema/envelope")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    assert response.text == SCHEMA_FILE.read_text()


def test_publishing_guide_has_a_valid_example_of_every_event_type() -> None:
    import re

    from domain.contract import data_from_content

    guide = (SCHEMA_FILE.parents[1] / "docs" / "publishing.md").read_text()
    found = dict(re.findall(r"#### `(\w+)`\n.*?```json\n(.*?)\n```", guide, flags=re.S))
    assert sorted(found) == sorted(EVENT_TYPES)
    for type_, block in found.items():
        data_from_content(type_, json.loads(block))
    assert "partitioner=murmur2_random" in guide and "acks=all" in guide
    readme = (SCHEMA_FILE.parents[1] / "README.md").read_text()
    assert "../shared/DESIGN.md" not in readme
