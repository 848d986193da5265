"""Cross-object analysis of Gateway API objects (MG201-MG205 of :mod:`generator.render.analysis`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import Place
from generator.render import analysis

CONFORMANCE = Path(__file__).resolve().parent / "gateway-api-conformance"


@dataclass
class Obj:
    obj: dict
    env: str = "prod"
    app: str = "web"
    namespace: str = "shop"
    path: str = "rendered/prod/web/httproute.yaml"
    place: Place | None = None
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = self.obj["kind"]


GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "shop"},
           "spec": {"gatewayClassName": "istio",
                    "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"}]}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-v1", "namespace": "shop"},
           "spec": {"ports": [{"port": 80}]}}
ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["web.example.com"],
                  "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                             "backendRefs": [{"name": "web-v1", "port": 80}]}]}}


def codes(*objs: dict[str, Any]) -> list[str]:
    return [f.code for f in analysis.analyze_objects([Obj(o) for o in objs])]


def test_consistent_objects_have_no_findings() -> None:
    assert codes(GATEWAY, SERVICE, ROUTE) == []


def test_a_parent_gateway_or_listener_that_does_not_exist_is_mg201() -> None:
    assert codes(SERVICE, ROUTE) == ["MG201"]
    route = copy.deepcopy(ROUTE)
    route["spec"]["parentRefs"][0]["sectionName"] = "https"
    findings = analysis.analyze_objects([Obj(GATEWAY), Obj(SERVICE), Obj(route)])
    assert [f.code for f in findings] == ["MG201"] and "no listener https" in findings[0].message


def test_hostnames_outside_the_listeners_are_mg202() -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["hostnames"] = ["web.example.org"]
    findings = analysis.analyze_objects([Obj(GATEWAY), Obj(SERVICE), Obj(route)])
    assert [f.code for f in findings] == ["MG202"]
    assert findings[0].format().startswith("rendered/prod/web/httproute.yaml: error: HTTPRoute shop/web: hostnames")


def test_a_missing_backend_service_is_mg203() -> None:
    assert codes(GATEWAY, ROUTE) == ["MG203"]


def test_a_match_that_a_higher_precedence_one_always_takes_is_mg204() -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"].append(copy.deepcopy(route["spec"]["rules"][0]))  # the same match again: never taken
    route["spec"]["rules"].append({"matches": [{"path": {"type": "Exact", "value": "/api/x"}}],
                                   "backendRefs": [{"name": "web-v1", "port": 80}]})  # wins by precedence: fine
    findings = analysis.analyze_objects([Obj(GATEWAY), Obj(SERVICE), Obj(route)])
    assert [(f.code, f.level) for f in findings] == [("MG204", "warning")]
    assert "rule 1 match 0 is never taken: rule 0 match 0" in findings[0].message


def test_a_cross_namespace_backend_without_a_reference_grant_is_mg205() -> None:
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "other"
    other = copy.deepcopy(SERVICE)
    other["metadata"]["namespace"] = "other"
    assert codes(GATEWAY, other, route) == ["MG205"]
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "shop-routes", "namespace": "other"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    assert codes(GATEWAY, other, route, grant) == []


def test_the_conformance_suites_valid_routes_have_no_errors() -> None:
    docs = []
    for name in ("base/manifests.yaml", "tests/httproute-matching.yaml", "tests/httproute-weight.yaml",
                 "tests/httproute-path-match-order.yaml", "tests/httproute-reference-grant.yaml"):
        docs += [d for d in yaml.safe_load_all((CONFORMANCE / name).read_text(encoding="utf-8")) if isinstance(d, dict)]
    findings = analysis.analyze_objects([Obj(d) for d in docs])
    assert analysis.errors_of(findings) == [], [f.format() for f in findings]
