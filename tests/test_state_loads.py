"""The runner's state decoder reads exactly what the library's JSON decoder reads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections import log

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_plain_loads_equals_json_loads(value: object) -> None:
    state = json.dumps({"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "v": value})
    assert log.plain_loads(state.encode()) == json.loads(state)


@pytest.mark.parametrize(
    "number", [123456789012345678901234567890, -9223372036854775809, 2**64, -(2**63)]
)
def test_an_integer_beyond_64_bits_is_read_exactly(number: int) -> None:
    state = b'{"data": {"score": %d}}' % number
    assert log.plain_loads(state) == {"data": {"score": number}}
    assert type(log.plain_loads(state)["data"]["score"]) is int


def test_an_escaped_lone_surrogate_is_read_as_json_reads_it() -> None:
    state = b'{"data": {"note": "\\ud800"}}'
    assert log.plain_loads(state) == json.loads(state) == {"data": {"note": "\ud800"}}


def test_a_state_that_is_not_json_is_still_an_error() -> None:
    with pytest.raises(ValueError):
        log.plain_loads(b"{not json")
