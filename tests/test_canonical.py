"""The fast canonical path writes exactly the bytes of the RFC 8785 reference."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from uuid import UUID

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.contract import (
    DATA_MODELS,
    PLAIN_CONTENT_TYPES,
    envelope_content,
    parse_envelope,
    utc_text,
)
from domain.integrity import canonical, canonical_content, chain_hash
from domain.synthetic import generate_people

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_fast_path_equals_the_reference(value: dict) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical(value)
        return
    assert canonical(value) == expected


@pytest.mark.parametrize(
    "number",
    [
        14.0,
        -0.0,
        1e-4,
        0.1,
        1e15 + 0.5,
        1e16,
        1e21,
        5e-7,
        123456789.123,
        2.0**53,
        1.7976931348623157e308,
    ],
)
def test_numbers_at_the_edges_of_the_fast_path(number: float) -> None:
    assert math.isfinite(number)
    value = {"n": number, "ñ": [number], "k": '\u2028\x00"\\'}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical({"n": number}) == rfc8785.dumps({"n": number})


def test_keys_sort_by_utf16_code_units_like_the_reference() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=2**53 - 1),
    patient=st.uuids(),
    version=st.integers(min_value=0, max_value=2**53 - 1),
    recorded_at=st.datetimes(timezones=st.just(UTC)),
    prev=st.none() | st.text(max_size=70) | st.text("0123456789abcdef", min_size=64, max_size=64),
    content=st.text(max_size=70) | st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_chain_hash_is_the_hash_of_the_canonical_link(
    position: int,
    patient: UUID,
    version: int,
    recorded_at: datetime,
    prev: str | None,
    content: str,
) -> None:
    """``chain_hash`` writes the link's JCS bytes itself for plain values: it must hash
    exactly what the reference canonicaliser writes, for any values."""
    body = {
        "position": position,
        "patient_id": str(patient),
        "version": version,
        "recorded_at": utc_text(recorded_at),
        "prev_hash": prev,
        "content_hash": content,
    }
    expected = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert (
        chain_hash(
            position=position,
            patient_id=patient,
            version=version,
            recorded_at=recorded_at,
            prev_hash=prev,
            content_digest=content,
        )
        == expected
    )


# Contents of the number-free types: strings (any code point but lone surrogates),
# booleans and null, in objects with ASCII keys, as ``envelope_content`` makes them.
plain_scalars = st.none() | st.booleans() | st.text(st.characters(exclude_categories=("Cs",)))
plain_values = st.recursive(
    plain_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(max_codepoint=127)), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from(sorted(PLAIN_CONTENT_TYPES)),
    data=st.dictionaries(st.text(st.characters(max_codepoint=127)), plain_values, max_size=6),
    schema_version=st.integers(min_value=0, max_value=2**53 - 1),
)
def test_plain_contents_take_orjson_and_equal_the_reference(
    kind: str, data: dict, schema_version: int
) -> None:
    content = {"type": kind, "schema_version": schema_version, "data": data, "é": "ü\x1f"}
    assert canonical_content(content) == rfc8785.dumps(content)


def test_contents_with_numbers_or_what_orjson_refuses_go_the_general_way() -> None:
    floats = {"type": "CaseIdentified", "data": {"risk_score": 1.0, "criteria": ["x"]}}
    assert canonical_content(floats) == rfc8785.dumps(floats) == canonical(floats)
    assert b'"risk_score":1}' in canonical_content(floats)  # JCS writes 1.0 as 1
    surrogate = {"type": "ReferralMade", "data": {"reason": "\ud800"}}
    with pytest.raises(rfc8785.CanonicalizationError):  # as before: no JCS for it
        canonical_content(surrogate)


def test_only_the_types_with_numbers_are_left_out() -> None:
    """The set is derived from the models; this says which it is today, so a contract
    change that adds a number (or a publisher-keyed object) to a type is noticed."""
    assert set(DATA_MODELS) - PLAIN_CONTENT_TYPES == {"CaseIdentified", "OutcomeRecorded"}


def test_every_synthetic_content_hashes_as_the_reference() -> None:
    for person in generate_people(people=300, seed=5):
        for raw in person:
            content = envelope_content(parse_envelope(raw))
            assert canonical_content(content) == rfc8785.dumps(content)
