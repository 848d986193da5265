"""CORS is what Envoy's CORS filter does: :mod:`generator.routing.cors` against a real Envoy.

Each CORS policy -- VirtualService ``corsPolicy`` forms, and the HTTPRoute ``CORS`` filters of the
Gateway API conformance suite as istiod converts them -- is served by a real Envoy (translated as
istiod does, tests/envoy.py ``cors_policy``) on its own virtual host; preflights and other
requests from allowed and other origins are sent, and the status, whether the backend answered,
and every ``access-control-*`` response header must be what the model says. ``explain`` for a
rendered VirtualService and ``explain --objects`` answer from the same model. Without a runnable
Envoy the Envoy test is skipped with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render import explain as explain_mod
from generator.render import objects as objects_mod
from generator.routing import cors, httproute
from generator.routing.request import Request
from tests import envoy
from tests.conftest import build_file_tree, run_meshgen

BINARY, WHY_NOT = envoy.envoy_binary()
CONFORMANCE = Path(__file__).resolve().parent / "gateway-api-conformance"

#: VirtualService corsPolicy forms (Istio's fields).
POLICIES: dict[str, dict[str, Any]] = {
    "exact": {"allowOrigins": [{"exact": "https://a.example"}], "allowMethods": ["GET", "POST"],
              "allowHeaders": ["x-a"], "exposeHeaders": ["x-b", "x-c"], "maxAge": "600s", "allowCredentials": True},
    "prefix": {"allowOrigins": [{"prefix": "https://shop."}], "allowMethods": ["*"], "allowHeaders": ["*"]},
    "regex-ignore": {"allowOrigins": [{"regex": r"https://.*\.bar\.com"}], "unmatchedPreflights": "IGNORE",
                     "allowCredentials": True, "exposeHeaders": ["x-e"]},
    "any": {"allowOrigins": [{"exact": "*"}], "allowMethods": ["PUT"]},
    "deprecated": {"allowOrigin": ["https://a.example"], "allowMethods": ["GET"]},
}
ORIGINS = ["https://a.example", "https://shop.example.com", "https://www.bar.com", "https://x.y.bar.com",
           "https://foobar.com:12345", "http://other"]


def _conformance_policies() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((CONFORMANCE / "tests/httproute-cors.yaml").read_text(encoding="utf-8"))
    out = {}
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        for i, rule in enumerate(doc["spec"]["rules"]):
            for f in rule.get("filters") or []:
                if f["type"] == "CORS":
                    out[f"{doc['metadata']['name']}-{i}"] = cors.from_httproute(f["cors"])
    return out


def _requests() -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = [("GET", {}), ("OPTIONS", {"origin": "https://a.example"})]
    for origin in ORIGINS:
        out += [("OPTIONS", {"origin": origin, "access-control-request-method": "PUT"}),
                ("OPTIONS", {"origin": origin, "access-control-request-method": "GET",
                             "access-control-request-headers": "x-a, x-z"}),
                ("GET", {"origin": origin}), ("POST", {"origin": origin, "access-control-request-method": "GET"})]
    return out


def test_the_conversion_of_an_httproute_cors_filter_is_istiods() -> None:
    """conversion.go ``createCorsFilter``: ``*`` any origin, exact, a trailing ``*`` a prefix, else a regex."""
    got = cors.from_httproute({"allowOrigins": ["*", "https://a.example", "https://a.*", "https://*.bar.com"],
                               "allowCredentials": False, "allowMethods": ["GET"], "maxAge": 5})
    assert got == {"allowOrigins": [{"regex": cors.ANY_ORIGIN}, {"exact": "https://a.example"},
                                    {"prefix": "https://a."}, {"regex": r"^https://.*\.bar\.com$"}],
                   "allowMethods": ["GET"], "maxAge": "5s", "unmatchedPreflights": "IGNORE"}
    bar = cors.from_httproute({"allowOrigins": ["https://*.bar.com"]})
    assert cors.origin_allowed(bar, "https://x.y.bar.com") and not cors.origin_allowed(bar, "https://bar.com.evil")
    assert cors.origin_allowed(got, "http://localhost:3000") and not cors.origin_allowed(got, "null")


def test_a_request_without_origin_is_not_the_cors_filters_business() -> None:
    assert cors.answer(POLICIES["exact"], Request(method="OPTIONS")) is None


@pytest.mark.skipif(BINARY is None, reason=WHY_NOT)
def test_envoys_cors_filter_answers_as_the_model_says() -> None:
    assert BINARY is not None
    policies = {**POLICIES, **_conformance_policies()}
    hosts = [envoy.VirtualHost(f"{name}.example", [{"name": name, "corsPolicy": policy,
                                                     "route": [{"destination": {"host": "web", "subset": "v1"}}]}])
             for name, policy in policies.items()]
    proxy = envoy.Proxy()
    server = envoy.Envoy(BINARY, hosts, [proxy], {("web", 80): ["v1"]})
    checked = 0
    try:
        for name, policy in policies.items():
            for method, headers in _requests():
                model = cors.answer(policy, Request(method=method, headers=headers))
                got = server.send(proxy, method, "/x", f"{name}.example", headers)
                where = (name, method, headers)
                if model is not None and model.answered:
                    assert (got.status, got.subset) == (200, None), where
                else:
                    assert got.subset == "v1", where  # forwarded to the backend
                shown = {k: v for k, v in got.headers.items() if k.startswith("access-control-")}
                assert shown == (model.headers if model else {}), where
                checked += 1
    finally:
        server.close()
    assert checked > 200


SHOP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: shop, namespace: web}
spec:
  service: {host: shop, port: 80}
  versions:
    v1: {labels: {version: v1}}
  routes:
    - name: api
      when: uri prefix "/api"
      to: v1
      corsPolicy:
        allowOrigins: [{exact: "https://shop.example.com"}]
        allowMethods: [GET, POST]
        exposeHeaders: [x-total]
        maxAge: 600s
    - name: default
      to: v1
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {}
"""


def test_explain_answers_a_preflight_on_a_routes_cors_policy_as_envoys_cors_filter(tmp_path: Path) -> None:
    root = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": SHOP})
    assert run_meshgen("render", cwd=root).returncode == 0
    args = ["explain", "shop", "--env", "dev", "--uri", "/api/items", "--header", "origin=https://shop.example.com"]
    pre = run_meshgen(*args, "--method", "OPTIONS", "--header", "access-control-request-method=POST",
                      "--output", "json", cwd=root)
    out = json.loads(pre.stdout)
    assert out["route"] == "api" and out["cors"]["answered"] is True
    assert out["cors"]["responseHeaders"] == {"access-control-allow-origin": "https://shop.example.com",
                                              "access-control-allow-methods": "GET,POST",
                                              "access-control-max-age": "600",
                                              "access-control-expose-headers": "x-total"}
    text = run_meshgen(*args, "--method", "OPTIONS", "--header", "access-control-request-method=POST", cwd=root)
    assert "Envoy answers 200 itself (its CORS filter answers the preflight)" in text.stdout
    simple = json.loads(run_meshgen(*args, "--output", "json", cwd=root).stdout)
    assert simple["cors"] == {"preflight": False, "originAllowed": True, "answered": False,
                              "responseHeaders": {"access-control-allow-origin": "https://shop.example.com",
                                                  "access-control-expose-headers": "x-total"}}
    other = json.loads(run_meshgen("explain", "shop", "--env", "dev", "--uri", "/api/items", "--method", "OPTIONS",
                                   "--header", "origin=https://evil.example", "--header",
                                   "access-control-request-method=POST", "--output", "json", cwd=root).stdout)
    assert other["cors"]["answered"] is False and other["cors"]["responseHeaders"] == {}  # forwarded (FORWARD)
    plain = json.loads(run_meshgen("explain", "shop", "--env", "dev", "--uri", "/other", "--header",
                                   "origin=https://shop.example.com", "--output", "json", cwd=root).stdout)
    assert "cors" not in plain  # no corsPolicy on that route


def test_explain_objects_answers_cors_for_a_virtual_service_too() -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web", "namespace": "shop"},
          "spec": {"hosts": ["web"], "http": [{"name": "all", "corsPolicy": POLICIES["exact"],
                                               "route": [{"destination": {"host": "web", "subset": "v1"}}]}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}}
    asked = objects_mod.Asked(method="OPTIONS", headers={"Origin": "https://a.example",
                                                          "Access-Control-Request-Method": "POST"})
    answer = objects_mod.explain(httproute.Objects.of([vs, svc]), asked, service=("shop", "web"))
    assert answer["status"] == 200 and answer["backends"] == {} and answer["cors"]["answered"] is True
    assert answer["cors"]["responseHeaders"]["access-control-allow-credentials"] == "true"
