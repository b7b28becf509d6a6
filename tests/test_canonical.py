"""The fast canonical path writes exactly the bytes of the RFC 8785 reference."""

from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.integrity import canonical

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


@pytest.mark.parametrize("number", [14.0, -0.0, 1e-4, 0.1, 1e15 + 0.5, 1e16, 1e21, 5e-7,
                                    123456789.123, 2.0**53, 1.7976931348623157e308])
def test_numbers_at_the_edges_of_the_fast_path(number: float) -> None:
    assert math.isfinite(number)
    value = {"n": number, "ñ": [number], "k": "\u2028\x00\"\\"}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical({"n": number}) == rfc8785.dumps({"n": number})


def test_keys_sort_by_utf16_code_units_like_the_reference() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical(value) == rfc8785.dumps(value)
