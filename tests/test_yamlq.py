"""The quoting filter is a grammar: every plain value must come back from YAML exactly as it went in."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.render.quoting import quote

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
           | st.floats(allow_nan=False) | st.text())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=2000, derandomize=True)
@given(values)
def test_any_value_round_trips_through_yaml(value: object) -> None:
    assert yaml.load(quote(value), Loader=yaml.CSafeLoader) == value


@settings(max_examples=1000, derandomize=True)
@given(st.text(), st.text())
def test_a_string_cannot_inject_structure_into_a_template(key: str, value: str) -> None:
    """Inside a block mapping, a quoted value is one scalar whatever it holds."""
    text = f"spec:\n  name: {quote(key)}\n  value: {quote(value)}\n  after: 1\n"
    assert yaml.load(text, Loader=yaml.CSafeLoader) == {"spec": {"name": key, "value": value, "after": 1}}


def test_special_floats_and_exponents() -> None:
    assert yaml.load(quote(1e-05), Loader=yaml.CSafeLoader) == 1e-05
    assert yaml.load(quote(float("inf")), Loader=yaml.CSafeLoader) == float("inf")
    assert math.isnan(yaml.load(quote(float("nan")), Loader=yaml.CSafeLoader))
