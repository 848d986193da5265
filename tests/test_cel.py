"""The CEL rules (``x-kubernetes-validations``) of Istio's and the Gateway API's CRDs, evaluated
by cel-python (:mod:`generator.render.cel`), not only their JSON Schema."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from generator.render import cel
from generator.render.render import istio_schema_problems
from tests.conftest import ROOT

CONFORMANCE = ROOT / "tests" / "gateway-api-conformance"


def _objects(*dirs: Path) -> list[dict]:
    out = []
    for d in dirs:
        for path in sorted(d.rglob("*.yaml")):
            out += [o for o in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(o, dict)]
    return out


ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"parentRefs": [{"name": "gw"}],
             "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                        "backendRefs": [{"name": "web-v1", "port": 80}]}]},
}


def test_every_rule_of_the_conformance_and_rendered_objects_is_evaluated_and_holds() -> None:
    objects = [o for o in _objects(CONFORMANCE, ROOT / "rendered") if cel.schema_for(o) is not None]
    assert len(objects) > 100
    assert {o["kind"] for o in objects} >= {"HTTPRoute", "Gateway", "VirtualService", "DestinationRule"}
    for obj in objects:
        assert cel.problems(obj) == [], obj["metadata"]
        assert cel.unevaluated(obj) == [], obj["metadata"]


def test_a_service_backend_without_a_port_breaks_the_httproute_rule() -> None:
    route = copy.deepcopy(ROUTE)
    del route["spec"]["rules"][0]["backendRefs"][0]["port"]
    assert cel.problems(route) == ["spec.rules[0].backendRefs[0]: Must have port for Service reference"]


def test_a_relative_path_breaks_the_httproute_rule() -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"][0]["matches"][0]["path"]["value"] = "api"
    assert any("must be an absolute path" in p for p in cel.problems(route)), cel.problems(route)


def test_the_same_parent_twice_breaks_the_rule_that_reads_an_escaped_namespace() -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["parentRefs"] = [{"name": "gw", "namespace": "infra"}, {"name": "gw", "namespace": "infra"}]
    assert any(p.startswith("spec.parentRefs:") for p in cel.problems(route)), cel.problems(route)
    route["spec"]["parentRefs"][1]["namespace"] = "other"
    assert cel.problems(route) == []


def test_validate_reports_an_istio_cel_rule_the_json_schema_lets_through() -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "web", "namespace": "shop"},
          "spec": {"hosts": ["web"], "http": [{"timeout": "0.5ms", "route": [{"destination": {"host": "web"}}]}]}}
    assert istio_schema_problems(vs) == ["spec.http[0].timeout: must be a valid duration greater than 1ms"]
    vs["spec"]["http"][0]["timeout"] = "2s"
    assert istio_schema_problems(vs) == []


def test_the_gateway_api_schemas_match_the_vendored_crds() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import sync_gateway_api_schemas as sync
    finally:
        sys.path.pop(0)
    for path, text in sync.build().items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run tools/sync_gateway_api_schemas.py"


def test_gateway_api_objects_are_checked_against_schema_then_cel() -> None:
    from generator.render.render import gateway_api_schema_problems

    assert gateway_api_schema_problems(ROUTE) == []
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    assert [p.split(":")[0] for p in gateway_api_schema_problems(route)] == ["spec.rules.0.backendRefs.0.weight"]
    del route["spec"]["rules"][0]["backendRefs"][0]["weight"]
    del route["spec"]["rules"][0]["backendRefs"][0]["port"]
    assert gateway_api_schema_problems(route) == ["spec.rules[0].backendRefs[0]: Must have port for Service reference"]
