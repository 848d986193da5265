"""Schema validation: the compiled fast path must agree with jsonschema on what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.spec import schema
from generator.spec.loader import load_document
from tests.conftest import ROOT
from tests.test_refusals import APP, app

INVALID = {
    "unknown field": app("- name: default\n  to: v1\n  timout: 5s\n"),
    "weight over 100": app("- name: default\n  to: {v1: 120}\n"),
    "bad name": APP.replace("name: web", "name: Web_App"),
    "bad duration": app("- name: default\n  to: v1\n  timeout: 5 seconds\n"),
    "unknown Istio field": app("- name: default\n  to: v1\n", "trafficPolicy:\n  tls: {mood: ISTIO_MUTUAL}\n"),
    "mirror percent": app("- name: default\n  to: v1\n  mirror: {version: v2, percent: 150}\n"),
    "missing service": APP.replace("  service: {host: web, port: 80}\n", ""),
    "destination without host": app("- name: default\n  to: {subset: v1, port: 80}\n"),
    "tcp route without to": app("- name: default\n  to: v1\n", "tcp:\n  - name: db\n    match: [{port: 5432}]\n"),
    "tls route without sniHosts": app("- name: default\n  to: v1\n",
                                      "tls:\n  - name: sni\n    match: [{port: 443}]\n    to: v1\n"),
}


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "FAST_AFTER", 0)


def _errors(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    doc = load_document(path, "apps/web.yaml")
    return [e.format() for e in schema.validate(doc.data, "app.schema.json", doc.place, doc.key_place)]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_fast_path_rejects_what_jsonschema_rejects(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _errors(INVALID[case], tmp_path)
    assert slow
    monkeypatch.setattr(schema, "FAST_AFTER", 0)
    assert _errors(INVALID[case], tmp_path) == slow


@pytest.mark.usefixtures("fast_path")
@pytest.mark.parametrize("path", sorted((ROOT / "apps").glob("*.yaml")), ids=lambda p: p.name)
def test_fast_path_accepts_the_bundled_example(path: Path) -> None:
    doc = load_document(path, f"apps/{path.name}")
    assert schema.validate(doc.data, "app.schema.json", doc.place, doc.key_place) == []


def test_a_const_compiles_as_the_one_value_enum_it_is() -> None:
    """The compiled validator reads ``const`` as a one-value ``enum`` (JSON Schema's own
    definition), beside an ``enum`` too, and leaves a property named ``const`` alone."""
    compiled = schema._const_as_enum({"type": "object", "properties": {
        "kind": {"const": "App"}, "const": {"type": "string"}, "both": {"enum": ["a", "b"], "const": "b"},
        "list": {"items": {"const": 1}}, "any": {"anyOf": [{"const": True}, {"type": "null"}]}}})
    assert compiled["properties"]["kind"] == {"enum": ["App"]}
    assert compiled["properties"]["const"] == {"type": "string"}
    assert compiled["properties"]["both"] == {"enum": ["a", "b"], "allOf": [{"enum": ["b"]}]}
    assert compiled["properties"]["list"] == {"items": {"enum": [1]}}
    assert compiled["properties"]["any"] == {"anyOf": [{"enum": [True]}, {"type": "null"}]}

