"""``explain --objects`` agrees with a real Envoy on drawn HTTPRoutes: Envoy gets the routes as
istiod converts them (tests/gateway_conversion.py, after conversion.go) and the request is sent
for real; the backend that answers (or the status) is what ``explain --objects`` says."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.render import objects as objects_mod
from generator.routing import httproute
from tests import envoy
from tests.gateway_conversion import convert

BINARY, WHY_NOT = envoy.envoy_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason=WHY_NOT)

NS = "shop"
HOST = "web.example.com"
SERVICES = ["svc-1", "svc-2", "svc-3"]
GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": NS},
           "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/b", "/b/c", "/a/b/c"]


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"port": 80}]}}


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {"path": {"type": draw(st.sampled_from(["Exact", "PathPrefix"])),
                                      "value": draw(st.sampled_from(["/", "/a", "/a/", "/a/b", "/b"]))}}
    if draw(st.booleans()):
        match["method"] = draw(st.sampled_from(["GET", "POST"]))
    if draw(st.booleans()):
        match["headers"] = [{"name": "x-v", "value": draw(st.sampled_from(["1", "2"]))}]
    if draw(st.integers(0, 3)) == 0:
        match["queryParams"] = [{"name": "v", "value": "1"}]
    backend = draw(st.sampled_from([*SERVICES, "gone"]))  # "gone": no such Service, answers 500
    refs = [{"name": backend, "port": 80}]
    if draw(st.booleans()):  # a weighted split; a zero weight never answers
        other = draw(st.sampled_from(SERVICES))
        refs = [{**refs[0], "weight": draw(st.integers(0, 3))}, {"name": other, "port": 80, "weight": draw(st.integers(1, 3))}]
    return {"matches": [match], "backendRefs": refs}


requests = st.fixed_dictionaries({"path": st.sampled_from(PATHS), "method": st.sampled_from(["GET", "POST"]),
                                  "header": st.sampled_from([None, "1", "2"]), "query": st.sampled_from([None, "1"])})


def route(name: str, rule_list: list[dict[str, Any]], created: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [HOST], "rules": rule_list}}


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rules(), min_size=1, max_size=5), st.lists(rules(), max_size=3),
       st.lists(requests, min_size=10, max_size=25))
def test_drawn_httproutes_route_in_envoy_as_explain_objects_says(first: list, second: list, asks: list) -> None:
    routes = [route("b-route", first, "2026-01-02T00:00:00Z")] + ([route("a-route", second, "2026-01-01T00:00:00Z")]
                                                                 if second else [])
    objects = httproute.Objects.of([GATEWAY, *map(service, SERVICES), *routes])
    http = convert(routes, objects)
    proxy = envoy.Proxy(gateway=f"{NS}/gw", port=80)
    hosts = [envoy.VirtualHost(HOST, http, 80)]
    subsets = {(f"{s}.{NS}.svc.cluster.local", 80): [] for s in SERVICES}
    assert BINARY is not None
    server = envoy.Envoy(BINARY, hosts, [proxy], subsets)
    try:
        for ask in asks:
            headers = {"x-v": ask["header"]} if ask["header"] else {}
            target = ask["path"] + (f"?v={ask['query']}" if ask["query"] else "")
            answer = objects_mod.explain(objects, objects_mod.Asked(uri=target, method=ask["method"], headers=headers,
                                                                     authority=HOST), gateway=(NS, "gw"))
            got = server.send(proxy, ask["method"], target, HOST, headers)
            if answer["status"] is not None:
                assert (got.status, got.subset) == (answer["status"], None), (ask, answer, http)
            else:
                host = str(got.subset)
                assert f"{NS}/{host.split('.')[0]}" in {k for k, w in answer["backends"].items() if w > 0}, \
                    (ask, answer, got, http)
    finally:
        server.close()
