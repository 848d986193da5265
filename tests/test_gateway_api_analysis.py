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


# -- GAMMA: routes whose parent is a Service (GEP-1426) ----------------------------------------------

APP_SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"ports": [{"port": 80}]}}
MESH_ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
              "metadata": {"name": "web-mesh", "namespace": "shop"},
              "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                       "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                  "backendRefs": [{"name": "web-v1", "port": 80}]}]}}


def test_a_mesh_route_whose_parent_service_does_not_exist_is_mg201() -> None:
    assert codes(APP_SERVICE, SERVICE, MESH_ROUTE) == []
    [finding] = analysis.analyze_objects([Obj(SERVICE), Obj(MESH_ROUTE)])
    assert finding.code == "MG201" and "parentRef Service shop/web is not among the objects" in finding.message
    assert "the mesh route attaches nowhere" in finding.message
    route = copy.deepcopy(MESH_ROUTE)
    route["spec"]["parentRefs"][0]["port"] = 8080
    [finding] = analysis.analyze_objects([Obj(APP_SERVICE), Obj(SERVICE), Obj(route)])
    assert finding.code == "MG201" and "Service shop/web has no port 8080 (it has 80)" in finding.message
    del route["spec"]["parentRefs"][0]["port"]  # no port: every port of the Service
    assert codes(APP_SERVICE, SERVICE, route) == []


def test_a_mesh_routes_hostnames_are_not_matched_against_anything() -> None:
    """GAMMA implementations infer nothing from hostnames (GEP-1294); Istio serves a mesh route for
    the Service's own host (route_collections.go), so no MG202 whatever they say."""
    route = copy.deepcopy(MESH_ROUTE)
    route["spec"]["hostnames"] = ["web.example.org"]
    assert codes(APP_SERVICE, SERVICE, route) == []


def test_a_mesh_routes_missing_backend_is_mg203() -> None:
    [finding] = analysis.analyze_objects([Obj(APP_SERVICE), Obj(MESH_ROUTE)])
    assert finding.code == "MG203" and "backend Service shop/web-v1 does not exist" in finding.message


def test_a_mesh_routes_cross_namespace_backend_without_a_reference_grant_is_mg205() -> None:
    route = copy.deepcopy(MESH_ROUTE)
    route["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "other"
    other = copy.deepcopy(SERVICE)
    other["metadata"]["namespace"] = "other"
    assert codes(APP_SERVICE, other, route) == ["MG205"]
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "shop-routes", "namespace": "other"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    assert codes(APP_SERVICE, other, route, grant) == []


# -- MG204 across the routes merged on one parent ------------------------------------------------------

def _named(route: dict[str, Any], name: str, **spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(route)
    out["metadata"]["name"] = name
    out["spec"].update(spec)
    return out


def test_a_rule_shadowed_by_a_rule_of_another_route_on_the_same_gateway_is_mg204() -> None:
    a, b = _named(ROUTE, "a"), _named(ROUTE, "b")
    findings = analysis.analyze_objects([Obj(GATEWAY), Obj(SERVICE), Obj(a, path="routes/a.yaml"),
                                         Obj(b, path="routes/b.yaml")])
    [finding] = findings
    assert (finding.code, finding.level, finding.place) == ("MG204", "warning", Place("routes/b.yaml"))
    assert finding.message.startswith("HTTPRoute shop/b rule 0 match 0 is never taken: HTTPRoute shop/a rule 0 "
                                      "match 0 (routes/a.yaml), merged with it on Gateway shop/gw port 80 host "
                                      "web.example.com, has higher precedence")
    assert "the route first by namespace/name wins" in finding.message
    # the older route wins the tie (creationTimestamp), whatever its name
    b["metadata"]["creationTimestamp"], a["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"
    [finding] = analysis.analyze_objects([Obj(GATEWAY), Obj(SERVICE), Obj(a), Obj(b)])
    assert finding.message.startswith("HTTPRoute shop/a rule 0 match 0 is never taken: HTTPRoute shop/b")
    assert "the oldest route (creationTimestamp) wins" in finding.message


def test_routes_of_other_hostnames_or_a_narrower_match_are_not_merged_into_a_shadow() -> None:
    a = _named(ROUTE, "a")
    elsewhere = _named(ROUTE, "b", hostnames=["shop.example.com"])  # another virtual host of the listener
    assert codes(GATEWAY, SERVICE, a, elsewhere) == []
    wider = _named(ROUTE, "b", hostnames=["*.example.com"])  # serves hosts a does not: taken there
    assert codes(GATEWAY, SERVICE, a, wider) == []
    exact = _named(ROUTE, "b")
    exact["spec"]["rules"][0]["matches"] = [{"path": {"type": "Exact", "value": "/api/x"}}]  # wins by precedence
    assert codes(GATEWAY, SERVICE, a, exact) == []


def test_mesh_routes_on_one_service_are_merged_but_a_consumer_route_is_not() -> None:
    first, second = _named(MESH_ROUTE, "a"), _named(MESH_ROUTE, "b")
    [finding] = analysis.analyze_objects([Obj(APP_SERVICE), Obj(SERVICE), Obj(first), Obj(second)])
    assert finding.code == "MG204" and "merged with it on Service shop/web port 80" in finding.message
    consumer = _named(MESH_ROUTE, "b")  # in the caller's namespace: replaces the producer's routes for its callers
    consumer["metadata"]["namespace"] = "client"
    consumer["spec"]["parentRefs"][0]["namespace"] = "shop"
    consumer["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "shop"
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "client-routes", "namespace": "shop"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "client"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    assert codes(APP_SERVICE, SERVICE, first, consumer, grant) == []


# -- places: objects read from files are placed at the offending field ---------------------------------

OBJECTS_FILE = """\
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec:
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-mesh, namespace: shop}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: web
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
    backendRefs:
    - name: web-v2
      port: 80
  - matches:
    - path: {type: PathPrefix, value: /api/}
    backendRefs:
    - name: web-v1
      port: 80
"""


def test_findings_on_objects_read_from_files_name_the_fields_line_and_column(tmp_path: Path) -> None:
    from generator.render import objects as objects_mod

    (tmp_path / "web.yaml").write_text(OBJECTS_FILE)
    findings = objects_mod.analyze(objects_mod.read([str(tmp_path / "web.yaml")]))
    shown = [f.format().replace(str(tmp_path) + "/", "") for f in findings]
    assert [f.code for f in findings] == ["MG201", "MG203", "MG204"]
    assert shown[0].startswith("web.yaml:14:11: error: HTTPRoute shop/web-mesh: parentRef Service shop/web")
    assert shown[1].startswith("web.yaml:19:13: error: HTTPRoute shop/web-mesh rule 0: backend Service shop/web-v2")
    assert shown[2].startswith("web.yaml:22:7: warning: HTTPRoute shop/web-mesh rule 1 match 0 is never taken")


def test_explain_objects_prints_the_analysis_of_its_objects_on_stderr(tmp_path: Path) -> None:
    from tests.conftest import run_meshgen

    (tmp_path / "web.yaml").write_text(OBJECTS_FILE + "---\n" + yaml.safe_dump(APP_SERVICE))
    proc = run_meshgen("explain", "--objects", "web.yaml", "--service", "shop/web", "--uri", "/api/x",
                       "--output", "json", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith("web.yaml:19:13: error: HTTPRoute shop/web-mesh rule 0: "
                                                 "backend Service shop/web-v2 does not exist")
    assert "[MG201]" not in proc.stderr and "web.yaml:22:7: warning:" in proc.stderr


ENTRY = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "payments", "namespace": "shop"},
         "spec": {"hosts": ["api.payments.example"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
                  "resolution": "DNS", "location": "MESH_EXTERNAL"}}
ENTRY_ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "payments", "namespace": "shop"},
               "spec": {"parentRefs": [{"group": "networking.istio.io", "kind": "ServiceEntry", "name": "payments"}],
                        "rules": [{"backendRefs": [{"group": "networking.istio.io", "kind": "Hostname",
                                                    "name": "api.payments.example", "port": 443}]}]}}


def test_a_mesh_route_whose_parent_service_entry_does_not_exist_or_lacks_the_port_is_mg201() -> None:
    """A parentRef to a ServiceEntry (Istio binds the mesh route to its hosts) is checked as a
    Service parent is: the ServiceEntry among the objects, and the port among its ports."""
    assert codes(ENTRY, ENTRY_ROUTE) == []
    [finding] = analysis.analyze_objects([Obj(ENTRY_ROUTE)])
    assert finding.code == "MG201" and "parentRef ServiceEntry shop/payments is not among the objects" in finding.message
    route = copy.deepcopy(ENTRY_ROUTE)
    route["spec"]["parentRefs"][0]["port"] = 8443
    [finding] = analysis.analyze_objects([Obj(ENTRY), Obj(route)])
    assert finding.code == "MG201" and "ServiceEntry shop/payments has no port 8443 (it has 443)" in finding.message
    route["spec"]["parentRefs"][0]["port"] = 443
    assert codes(ENTRY, route) == []
