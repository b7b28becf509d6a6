"""The read side's state decoder (orjson) reads exactly what the library's JSON decoder
reads, for every state the ledger can hold."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.contract import envelope_content, parse_envelope
from domain.recorder import StateTranscoder
from projections import log
from tests.envelopes import envelope

# JSON values without integers beyond 64 bits: no state holds one (below).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_plain_loads_equals_json_loads(value: object) -> None:
    state = StateTranscoder().encode({"v": value})
    assert log.plain_loads(state) == json.loads(state)


def test_no_state_holds_an_integer_beyond_64_bits() -> None:
    """orjson would read one as a float; the contract makes every number a float, and
    the transcoder that writes states refuses such an integer outright."""
    data = {"instrument": "EQ-5D-5L", "score": 10**30, "items": {"mobility": 2**70}}
    content = envelope_content(parse_envelope(envelope("OutcomeRecorded", data=data)))
    assert type(content["data"]["score"]) is float
    assert type(content["data"]["items"]["mobility"]) is float
    with pytest.raises(TypeError):
        StateTranscoder().encode({"data": {"score": 2**64}})


def test_an_escaped_lone_surrogate_is_read_as_json_reads_it() -> None:
    state = b'{"data": {"note": "\\ud800"}}'
    assert log.plain_loads(state) == json.loads(state) == {"data": {"note": "\ud800"}}


def test_a_state_that_is_not_json_is_still_an_error() -> None:
    with pytest.raises(ValueError):
        log.plain_loads(b"{not json")
