"""The compact encoder writes exactly what json.JSONEncoder writes with the same options."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dirigent.asl.jsontext import compact_encoder, dumps, dumps_foreign

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("ensure_ascii", [True, False])
@given(value=JSON_VALUES)
def test_the_encoder_writes_what_json_writes(ensure_ascii: bool, value: object) -> None:
    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii)
    assert compact_encoder(ensure_ascii=ensure_ascii, allow_nan=True)(value) == (
        reference.encode(value)
    )


def test_non_ascii_stays_as_is_in_aws_text_and_is_escaped_in_ascii_text() -> None:
    assert dumps({"name": "Zürich ✓"}) == '{"name":"Zürich ✓"}'
    ascii_text = compact_encoder(ensure_ascii=True, allow_nan=True)({"name": "Zürich"})
    assert ascii_text == '{"name":"Z\\u00fcrich"}'


def test_nan_is_refused_where_it_is_not_allowed_and_written_where_it_is() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps([math.nan])
    assert compact_encoder(ensure_ascii=True, allow_nan=True)([math.inf]) == "[Infinity]"


def test_a_value_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"when": object()})


def test_a_bare_string_is_encoded_as_a_json_string() -> None:
    assert dumps('say "hi"') == '"say \\"hi\\""'


def test_a_foreign_value_with_a_cycle_is_refused_as_json_refuses_it() -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_foreign(looped)
    assert dumps_foreign({"name": "Zürich", "n": [1, 2.5]}) == dumps(
        {"name": "Zürich", "n": [1, 2.5]}
    )
