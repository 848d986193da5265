"""Cross-object analysis: each analyzer with a failing and a passing fixture.

The fixtures are rendered objects built directly (meshgen's own templates never produce most
of these mistakes; a repository's template override can). The passing fixture is one
consistent environment -- ratings exposed through its Gateway, reviews inside the mesh --
and each failing fixture breaks it in exactly one way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest

from generator.errors import Place
from generator.render import analysis


@dataclass
class Obj:
    """Stand-in with the fields of ``generator.render.render.RenderedObject`` that analysis reads."""

    env: str
    app: str
    namespace: str
    kind: str
    obj: dict
    path: str = ""
    place: Place | None = field(default=None)

    def __post_init__(self) -> None:
        self.path = f"rendered/{self.env}/{self.namespace}/{self.app}/{self.kind.lower()}.yaml"
        self.place = Place(f"apps/{self.app}.yaml", 1, 1)


def vs(app: str, hosts: list[str], routes: list[dict], gateways: list[str] | None = None,
       ns: str = "mesh", env: str = "prod") -> Obj:
    spec: dict = {"hosts": hosts, "http": [{"name": "default", "route": routes}]}
    if gateways:
        spec["gateways"] = gateways
    return Obj(env, app, ns, "VirtualService",
               {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": app, "namespace": ns}, "spec": spec})


def dr(app: str, host: str, subsets: dict[str, dict], tls: str | None = "ISTIO_MUTUAL",
       ns: str = "mesh", env: str = "prod") -> Obj:
    spec: dict = {"host": host,
                  "subsets": [{"name": n, "labels": labels} for n, labels in subsets.items()]}
    if tls:
        spec["trafficPolicy"] = {"tls": {"mode": tls}}
    return Obj(env, app, ns, "DestinationRule",
               {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": app, "namespace": ns}, "spec": spec})


def gw(app: str, hosts: list[str], ns: str = "mesh", env: str = "prod") -> Obj:
    return Obj(env, app, ns, "Gateway",
               {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                "metadata": {"name": f"{app}-gateway", "namespace": ns},
                "spec": {"selector": {"istio": "ingressgateway"},
                         "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                      "hosts": hosts}]}})


def dest(host: str, subset: str, weight: int | None = None) -> dict:
    d: dict = {"destination": {"host": host, "subset": subset}}
    if weight is not None:
        d["weight"] = weight
    return d


VERSIONS = {("prod", "ratings"): {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
            ("prod", "reviews"): {"v1": {"version": "v1", "track": "stable"}}}


def consistent() -> list[Obj]:
    """One environment with no finding at all."""
    return [
        vs("ratings", ["ratings", "ratings.example.com"],
           [dest("ratings", "v1", 90), dest("ratings", "v2", 10)],
           gateways=["mesh", "ratings-gateway"]),
        dr("ratings", "ratings", {"v1": {"version": "v1"}, "v2": {"version": "v2"}}),
        gw("ratings", ["ratings.example.com"]),
        vs("reviews", ["reviews"], [dest("reviews", "v1")]),
        dr("reviews", "reviews.mesh.svc.cluster.local", {"v1": {"version": "v1"}}),
    ]


def codes(objects: list[Obj]) -> list[str]:
    return [f.code for f in analysis.analyze_objects(objects, versions=VERSIONS)]


def test_consistent_environment_has_no_finding() -> None:
    assert analysis.analyze_objects(consistent(), versions=VERSIONS) == []


def test_mg101_route_to_subset_without_destination_rule_subset() -> None:
    objects = consistent()
    objects[3].obj["spec"]["http"][0]["route"] = [dest("reviews", "v3")]
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG101"]
    assert "subset 'v3' of host reviews" in findings[0].message
    assert findings[0].format().startswith("apps/reviews.yaml:1:1: error: prod: VirtualService reviews.mesh")
    assert findings[0].format().endswith("[MG101]")


def test_mg101_mirror_to_undefined_subset() -> None:
    objects = consistent()
    objects[3].obj["spec"]["http"][0]["mirror"] = {"host": "reviews", "subset": "v9"}
    assert codes(objects) == ["MG101"]


def test_mg101_passes_when_subset_is_defined_under_another_spelling_of_the_host() -> None:
    objects = consistent()  # ratings' DestinationRule uses the short name, its route the FQDN
    objects[0].obj["spec"]["http"][0]["route"] = [dest("ratings.mesh.svc.cluster.local", "v1")]
    assert codes(objects) == []


def test_mg101_a_name_with_a_dot_is_not_completed() -> None:
    objects = consistent()  # istiod keeps reviews.mesh as it is: not the host of reviews' DestinationRule
    objects[3].obj["spec"]["http"][0]["route"] = [dest("reviews.mesh", "v1")]
    assert codes(objects) == ["MG101"]


def test_mg102_two_virtual_services_for_one_host() -> None:
    objects = consistent()
    objects.append(vs("reviews-copy", ["reviews.mesh.svc.cluster.local"], [dest("reviews", "v1")]))
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG102", "MG102"]
    assert "reviews-copy.mesh, reviews.mesh all bind host reviews.mesh.svc.cluster.local on the mesh" \
        in findings[0].message


def test_mg102_passes_for_one_host_in_two_namespaces() -> None:
    objects = consistent()
    objects.append(vs("reviews", ["reviews"], [dest("reviews", "v1")], ns="other"))
    objects.append(dr("reviews", "reviews", {"v1": {"version": "v1"}}, ns="other"))
    assert codes(objects) == []


def test_mg103_gateway_host_without_virtual_service() -> None:
    objects = consistent()
    objects[2].obj["spec"]["servers"][0]["hosts"].append("api.example.com")
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG103"]
    assert "serves host api.example.com" in findings[0].message


def test_mg103_passes_for_namespace_qualified_gateway_host() -> None:
    objects = consistent()
    objects[2].obj["spec"]["servers"][0]["hosts"] = ["*/ratings.example.com"]
    assert codes(objects) == []


def test_mg104_exposed_host_on_no_gateway() -> None:
    objects = consistent()
    objects[0].obj["spec"]["hosts"].append("ratings.example.org")
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG104"]
    assert "host ratings.example.org of VirtualService ratings.mesh is served by none" in findings[0].message


def test_mg104_passes_with_wildcard_gateway_host() -> None:
    objects = consistent()
    objects[2].obj["spec"]["servers"][0]["hosts"] = ["*.example.com"]
    objects[0].obj["spec"]["hosts"].append("api.example.com")
    assert codes(objects) == []


def test_mg105_virtual_service_binds_gateway_not_rendered() -> None:
    objects = consistent()  # the Gateway is rendered in staging, not in prod
    objects[3].obj["spec"]["gateways"] = ["mesh", "istio-system/shared-gateway"]
    shared = gw("shared", ["reviews"], ns="istio-system", env="staging")
    shared.obj["metadata"]["name"] = "shared-gateway"
    findings = [f for f in analysis.analyze_objects([*objects, shared], versions=VERSIONS) if f.env == "prod"]
    assert [(f.code, f.level) for f in findings] == [("MG105", "warning")]
    assert findings[0].format().startswith("apps/reviews.yaml:1:1: warning: ")
    assert analysis.errors_of(findings) == []


def test_mg109_virtual_service_binds_a_gateway_nothing_declares() -> None:
    objects = consistent()
    objects[3].obj["spec"]["gateways"] = ["mesh", "istio-system/shared-gateway"]
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [(f.code, f.level) for f in findings] == [("MG109", "error")]
    assert "spec.externalGateways" in findings[0].format()


def test_mg109_passes_for_a_declared_external_gateway() -> None:
    objects = consistent()
    objects[3].obj["spec"]["gateways"] = ["mesh", "istio-system/shared-gateway"]
    external = {"prod": {"gateways": ["istio-system/shared-gateway"], "hosts": []}}
    assert analysis.analyze_objects(objects, versions=VERSIONS, external=external) == []


def se(app: str, hosts: list[str], ns: str = "mesh", export_to: list[str] | None = None) -> Obj:
    spec: dict = {"hosts": hosts, "location": "MESH_EXTERNAL", "resolution": "DNS"}
    if export_to:
        spec["exportTo"] = export_to
    return Obj("prod", app, ns, "ServiceEntry", {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                                                 "metadata": {"name": app, "namespace": ns}, "spec": spec})


def test_mg110_two_service_entries_for_one_host() -> None:
    objects = [*consistent(), se("stripe", ["api.stripe.com"]), se("payments", ["api.stripe.com"], ns="pay")]
    assert codes(objects) == ["MG110", "MG110"]


def test_mg110_passes_when_no_namespace_sees_both() -> None:
    objects = [*consistent(), se("stripe", ["api.stripe.com"], export_to=["."]),
               se("payments", ["api.stripe.com"], ns="pay", export_to=["."])]
    assert codes(objects) == []


def test_mg111_destination_rule_for_a_host_nothing_routes_to() -> None:
    objects = [*consistent(), dr("stripe", "api.stripe.com", {}, tls="SIMPLE", ns="pay")]
    assert codes(objects) == ["MG111"]
    objects.append(se("stripe", ["api.stripe.com"], ns="pay"))
    assert codes(objects) == []
    external = {"prod": {"gateways": [], "hosts": ["*.stripe.com"]}}
    assert analysis.analyze_objects(objects[:-1], versions=VERSIONS, external=external) == []


def test_mg112_tls_route_on_a_port_its_gateway_does_not_serve() -> None:
    objects = consistent()
    objects[0].obj["spec"]["tls"] = [{"match": [{"port": 443, "sniHosts": ["ratings.example.com"]}],
                                      "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]
    assert codes(objects) == ["MG112"]  # the Gateway serves HTTP on 80 only
    objects[2].obj["spec"]["servers"].append({"port": {"number": 443, "name": "tls", "protocol": "TLS"},
                                              "hosts": ["ratings.example.com"], "tls": {"mode": "PASSTHROUGH"}})
    assert codes(objects) == []


def test_mg105_passes_for_gateway_in_another_namespace_that_is_rendered() -> None:
    objects = consistent()
    objects[2].obj["metadata"]["namespace"] = "ingress"
    objects[0].obj["spec"]["gateways"] = ["mesh", "ingress/ratings-gateway"]
    assert codes(objects) == []


def test_mg106_subset_labels_match_no_version() -> None:
    objects = consistent()
    objects[4].obj["spec"]["subsets"][0]["labels"] = {"version": "v1", "track": "canary"}
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG106"]
    assert "selects pods labelled track=canary, version=v1" in findings[0].message
    assert findings[0].hint == "versions of reviews: v1"


def test_mg106_passes_when_selector_is_a_subset_of_version_labels() -> None:
    objects = consistent()  # reviews v1 pods carry {version: v1, track: stable}; selector {version: v1}
    assert "MG106" not in codes(objects)
    assert analysis.analyze_objects(objects) == []  # without versions, MG106 does not run


def test_mg107_subset_plain_text_under_mutual_host() -> None:
    objects = consistent()
    objects[1].obj["spec"]["subsets"][1]["trafficPolicy"] = {"tls": {"mode": "DISABLE"}}
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [f.code for f in findings] == ["MG107"]
    assert "DestinationRule ratings.mesh: ISTIO_MUTUAL; subset 'v2' of ratings.mesh: DISABLE" \
        in findings[0].message


def test_mg107_two_destination_rules_of_one_host() -> None:
    objects = consistent()
    objects.append(dr("ratings-legacy", "ratings.mesh.svc.cluster.local", {}, tls="SIMPLE"))
    found = codes(objects)
    assert found.count("MG107") == 2 and set(found) == {"MG107", "MG108"}


def test_mg107_passes_when_subset_repeats_host_mode() -> None:
    objects = consistent()
    objects[1].obj["spec"]["subsets"][1]["trafficPolicy"] = {"tls": {"mode": "ISTIO_MUTUAL"}}
    assert codes(objects) == []


def test_mg108_namespace_mixes_mutual_and_plain_text() -> None:
    objects = consistent()
    objects[4].obj["spec"]["trafficPolicy"] = {"tls": {"mode": "DISABLE"}}
    findings = analysis.analyze_objects(objects, versions=VERSIONS)
    assert [(f.code, f.level) for f in findings] == [("MG108", "warning")]
    assert "uses tls mode DISABLE in namespace mesh, where ratings.mesh use ISTIO_MUTUAL" in findings[0].message


def test_mg108_passes_when_apps_are_in_different_namespaces() -> None:
    objects = [o for o in consistent() if o.app == "ratings"]
    objects.append(vs("reviews", ["reviews"], [dest("reviews", "v1")], ns="legacy"))
    objects.append(dr("reviews", "reviews", {"v1": {"version": "v1"}}, tls="DISABLE", ns="legacy"))
    assert codes(objects) == []


def test_environments_never_see_each_other() -> None:
    prod = consistent()
    dev = [copy.deepcopy(o) for o in prod]
    for o in dev:
        o.env = "dev"
    assert codes(prod + dev) == []


def test_place_of_refines_the_place() -> None:
    objects = consistent()
    objects[3].obj["spec"]["http"][0]["route"] = [dest("reviews", "v3")]
    seen = []

    def place_of(app: str, env: str, keys: tuple) -> Place:
        seen.append((app, env, keys))
        return Place(f"apps/{app}.yaml", 12, 5)

    [finding] = analysis.analyze_objects(objects, versions=VERSIONS, place_of=place_of)
    assert seen == [("reviews", "prod", ("spec", "routes", "default", "to", "v3"))]
    assert str(finding.place) == "apps/reviews.yaml:12:5"


@pytest.mark.parametrize("host,ns,expected", [
    ("ratings", "mesh", "ratings.mesh.svc.cluster.local"),
    ("ratings.mesh", "x", "ratings.mesh"),          # istiod completes no name with a dot
    ("ratings.mesh.svc", "x", "ratings.mesh.svc"),
    ("example.com", "x", "example.com"),
    ("*", "x", "*"),
    ("ratings.example.com", "x", "ratings.example.com"),
    ("*.example.com", "x", "*.example.com"),
])
def test_fqdn_resolves_like_istio(host: str, ns: str, expected: str) -> None:
    assert analysis.fqdn(host, ns) == expected


def test_every_code_is_documented_in_the_module_table() -> None:
    for code, (level, mirrors) in analysis.CODES.items():
        row = next(line for line in analysis.__doc__.splitlines() if line.startswith(code))
        assert level in row
        if mirrors:
            assert mirrors.split()[0] in row


def test_a_kubernetes_service_of_another_domain_suffix_is_mesh_internal_for_mg104_and_mg111() -> None:
    """A host ``<name>.<namespace>.svc.<domain>`` is a Kubernetes Service whatever the mesh's
    domainSuffix (routing.hosts.kube_service): routed by the sidecars (no MG104 on a mesh-bound
    VirtualService), and a DestinationRule for it needs no route or ServiceEntry (no MG111);
    ``name.namespace.svc`` alone is no Service."""
    objects = consistent()
    objects[0].obj["spec"]["hosts"].append("ratings.mesh.svc.corp.example")
    assert codes(objects) == []
    objects = consistent()
    objects[0].obj["spec"]["hosts"].append("ratings.mesh.svc")
    assert codes(objects) == ["MG104"]
    assert codes([*consistent(), dr("legacy", "legacy.pay.svc.corp.example", {}, tls="SIMPLE", ns="pay")]) == []
    assert codes([*consistent(), dr("legacy", "legacy.pay.svc", {}, tls="SIMPLE", ns="pay")]) == ["MG111"]
