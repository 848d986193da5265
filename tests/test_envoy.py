"""Routing is what Envoy does: rendered VirtualServices and DestinationRules, translated as
istiod does (tests/envoy.py), served by a real Envoy 1.40 on loopback with one tiny upstream
per subset; real HTTP requests. The subset that answers must be the one ``explain`` names
**and** the one the spec means (the first route whose ``when`` holds), on the bundled example,
the golden routing cases and Hypothesis-drawn route lists; 404 where the spec has no route.

Envoy starts once per configuration (one listener per proxy, one virtual host per
VirtualService) and each test sends its requests in a batch. Without a runnable Envoy the
module is skipped with the reason.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.errors import SpecErrors
from generator.render import explain as explain_mod
from generator.render.render import render_repo
from generator.routing import compiler as routing
from generator.routing import conditions, simulate
from generator.routing.request import normalize_path
from generator.spec.config import load_repo
from tests import envoy
from tests.conftest import ROOT
from tests.test_routing_properties import condition_texts
from tests.test_routing_properties import requests as random_requests

BINARY, WHY_NOT = envoy.envoy_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason=WHY_NOT)
GOLDEN = Path(__file__).parent / "golden" / "routing"
MARKER = "# --- compiled by meshgen (tests/test_routing.py rewrites below this line) ---\n"


def start(hosts: list[envoy.VirtualHost], proxies: list[envoy.Proxy],
          subsets: dict[tuple[str, int], list[str]]) -> envoy.Envoy:
    assert BINARY is not None
    return envoy.Envoy(BINARY, hosts, proxies, subsets)


def ask_of(request: simulate.Request) -> explain_mod.Ask:
    return explain_mod.Ask(uri=request.target or request.uri, method=request.method, headers=request.headers,
                           query=request.query, authority=request.authority, scheme=request.scheme,
                           port=request.port, source_namespace=request.source_namespace,
                           source_labels=request.source_labels, gateway=request.gateway)


def target(request: simulate.Request) -> str:
    path = request.target or request.uri
    query = "&".join(f"{k}={v}" for k, v in request.query.items())
    return f"{path}?{query}" if query else path


def send(proxy: envoy.Envoy, request: simulate.Request, domain: str) -> envoy.Answer:
    return proxy.send(envoy.Proxy.of(request), request.method, target(request), domain, request.headers)


def virtual_service(name: str, hosts: list[str], http: list[dict[str, Any]],
                    gateways: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": hosts, "http": http}
    if gateways:
        spec["gateways"] = gateways
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def answered(answer: envoy.Answer) -> str | None:
    """The subset that answered, ``"404"`` when Envoy answered 404 itself."""
    if answer.subset is not None:
        return answer.subset
    return str(answer.status)


def expected_subsets(result: explain_mod.Explanation) -> set[str]:
    """What may answer according to ``explain``: a subset of positive weight, or a status."""
    if result.outcome == simulate.OMITTED and result.request.gateway == "mesh":
        return set(result.versions)
    if result.status is not None:
        return {str(result.status)}
    return {v for v, w in result.destinations.items() if w > 0}


# --------------------------------------------------------------------------- the bundled example


def spec_meaning(app: Any, request: simulate.Request, gateway_ref: str | None) -> str | None:
    """The spec route the spec sends ``request`` to (``None``: none, so 404)."""
    expose = app.spec.get("expose") or {}
    if request.gateway != "mesh":
        if request.gateway != gateway_ref:
            return None
        paths = expose.get("paths")
        if paths and not any(request.uri.startswith(p) for p in paths):
            return None
    for route in app.spec["routes"]:
        if "when" not in route or conditions.holds(conditions.parse(route["when"]), request):
            return route["name"]
    return None


EXAMPLE_ASKS = [
    {}, {"uri": "/reviews/1"}, {"uri": "/reviews/1", "headers": {"end-user": "jason"}},
    {"uri": "/admin", "headers": {"end-user": "jason"}}, {"uri": "/x/../reviews/2"}, {"uri": "/ratings?x=1"},
    {"uri": "/", "method": "POST"},
]


def test_the_bundled_example_routes_in_envoy_as_explain_and_the_spec_say() -> None:
    rendering = render_repo(ROOT, cache=False)
    repo = load_repo(ROOT)
    hosts, cases, subsets = [], [], {}
    for obj in rendering.objects:
        if obj.kind == "DestinationRule":
            port = None
            for other in rendering.objects:
                if other.kind == "VirtualService" and (other.env, other.app) == (obj.env, obj.app):
                    port = explain_mod.Rendered(other.path, other.obj).service_port()
            subsets[(obj.obj["spec"]["host"], port)] = [s["name"] for s in obj.obj["spec"]["subsets"]]
        if obj.kind != "VirtualService":
            continue
        gateways = {o.obj["metadata"]["namespace"] + "/" + o.obj["metadata"]["name"]: o.obj
                    for o in rendering.objects if o.kind == "Gateway" and (o.env, o.app) == (obj.env, obj.app)}
        rendered = explain_mod.Rendered(obj.path, obj.obj, gateways,
                                        [s for (h, _), ss in subsets.items() for s in ss])
        app = repo.effective_app(obj.app, obj.env)
        domain = f"{obj.app}.{obj.env}.test"
        hosts.append(envoy.VirtualHost(domain, obj.obj["spec"]["http"], rendered.service_port(),
                                       obj.obj["spec"]["hosts"][0]))
        for gateway in rendered.bound_gateways:
            for ask in EXAMPLE_ASKS:
                result = rendered.explain(explain_mod.Ask(gateway=gateway, **ask))
                cases.append((domain, app, gateway if gateway != "mesh" else None, result))
    proxies = envoy.proxies_of(r.request for *_, r in cases)
    proxy = start(hosts, proxies, subsets)
    try:
        for domain, app, gateway, result in cases:
            got = answered(send(proxy, result.request, domain))
            meaning = spec_meaning(app, result.request, gateway)
            spec_may = {"404"} if meaning is None else {
                v for v, w in next(r for r in rendering_routes(app) if r["name"] == meaning)["to"].items() if w}
            assert got in expected_subsets(result), (domain, result)
            assert got in spec_may, (domain, result.request, meaning)
            assert result.spec_route == meaning
    finally:
        proxy.close()
    assert len(cases) > 50


def rendering_routes(app: Any) -> list[dict[str, Any]]:
    """The app's routes with ``to`` as ``{version: weight}`` (rollout weights applied as rendered)."""
    out = []
    for route in app.spec["routes"]:
        to = route["to"]
        out.append({"name": route["name"], "to": {to: 100} if isinstance(to, str) else dict(to)})
    rollout = app.spec.get("rollout")
    if rollout:  # the bot may have moved the canary's weight: both versions may answer
        for route in out:
            if route["name"] == rollout["route"]:
                route["to"] = {rollout["stable"]: 50, rollout["canary"]: 50}
    return out


# --------------------------------------------------------------------------- golden cases


def test_the_golden_routing_cases_route_in_envoy_as_reviewed() -> None:
    hosts, cases, names = [], [], set()
    for path in sorted(GOLDEN.glob("*.yaml")):
        head, _, compiled = path.read_text().partition(MARKER)
        case, http = yaml.safe_load(head), yaml.safe_load(compiled)["http"]
        domain = f"{path.stem}.test"
        hosts.append(envoy.VirtualHost(domain, http, 80, "app"))
        vs = virtual_service(path.stem, [domain], http, ["mesh", "mesh/reviews-gateway"])
        rendered = explain_mod.Rendered(path.name, vs)
        for spec in case["requests"]:
            fields = {k: v for k, v in spec.items() if k != "route"}
            request = simulate.Request(**{"authority": domain, **fields})
            result = rendered.explain(ask_of(request))
            cases.append((domain, spec["route"], result))
        names |= {r["name"] for r in case["routes"]}
    proxy = start(hosts, envoy.proxies_of(r.request for *_, r in cases), {("app", 80): sorted(names)})
    try:
        for domain, route, result in cases:
            got = answered(send(proxy, result.request, domain))
            assert got == (route or "404"), (domain, result.request)
            assert result.spec_route == route and got in expected_subsets(result), (domain, result)
    finally:
        proxy.close()


# --------------------------------------------------------------------------- drawn route lists


URI_REGEXES = ["/a.*", "/(a|b)", "/a/.*", "/ab[^](]x|/b", "/[[:alpha:]]b"]
LISTS_PER_ENVOY = 12
REQUESTS_PER_LIST = 60


def route_list(fields: tuple[str, ...]) -> st.SearchStrategy[list[str | None]]:
    return st.tuples(st.lists(condition_texts(fields), min_size=1, max_size=3), st.booleans()).map(
        lambda t: [*t[0], None] if t[1] else t[0])


def check_lists(lists: list[list[str | None]], scope: str | None, seed: int) -> None:
    """Compile each list (refusals are left out), serve them all, compare every request."""
    rnd = random.Random(seed)
    hosts, cases = [], []
    for i, whens in enumerate(lists):
        names = [f"r{j}" for j in range(len(whens))]
        routes = [routing.SpecRoute(n, w, {"route": [{"destination": {"host": "app", "subset": n}}]})
                  for n, w in zip(names, whens)]
        try:
            http = routing.compile_http(routes, scope=scope)
        except SpecErrors:
            continue
        domain = f"l{i}.test"
        hosts.append(envoy.VirtualHost(domain, http, 80, "app"))
        rendered = explain_mod.Rendered(domain, virtual_service(f"l{i}", [domain], http, ["mesh", "ns/gw"]))
        spec = [(n, conditions.TRUE if w is None else conditions.parse(w)) for n, w in zip(names, whens)]
        scope_expr = conditions.TRUE if scope is None else conditions.parse(scope)
        for request in random_requests(rnd, REQUESTS_PER_LIST):
            request = simulate.Request(**{**request.__dict__, "authority": domain, "target": None})
            meaning = None
            if conditions.holds(scope_expr, request):
                meaning = next((n for n, e in spec if conditions.holds(e, request)), None)
            cases.append((domain, meaning, rendered.explain(ask_of(request)), http))
    if not hosts:
        return
    proxy = start(hosts, envoy.proxies_of(r.request for _, _, r, _ in cases), {("app", 80): ["r0", "r1", "r2", "r3"]})
    try:
        for domain, meaning, result, http in cases:
            got = answered(send(proxy, result.request, domain))
            assert got == (meaning or "404"), (domain, result.request, http)
            assert result.spec_route == meaning and got in expected_subsets(result), (domain, result, http)
    finally:
        proxy.close()


def few(n: int) -> settings:
    return settings(derandomize=True, deadline=None, max_examples=n, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@few(4)
@given(st.lists(route_list(("header", "query", "uri", "method", "port")), min_size=LISTS_PER_ENVOY,
                max_size=LISTS_PER_ENVOY), st.integers(0, 2**32 - 1))
def test_drawn_route_lists_route_in_envoy_as_the_spec_says(lists: list[list[str | None]], seed: int) -> None:
    check_lists(lists, None, seed)


@few(3)
@given(st.lists(route_list(("header", "uri", "source", "gateway", "port")), min_size=LISTS_PER_ENVOY,
                max_size=LISTS_PER_ENVOY),
       st.sampled_from([None, 'gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a"))']),
       st.integers(0, 2**32 - 1))
def test_drawn_lists_with_gateways_ports_and_sources_route_in_envoy_as_the_spec_says(
        lists: list[list[str | None]], scope: str | None, seed: int) -> None:
    """Ports, gateways and source labels are settled per proxy, as istiod does."""
    check_lists(lists, scope, seed)


# --------------------------------------------------------------------------- the four defects


def test_a_regex_with_re2_only_syntax_keeps_its_prefix_in_envoy() -> None:
    cases = {'uri prefix "/ab" and uri regex "/ab[^](]x|/y"': None,  # refused: both cannot be held
             'uri prefix "/" and uri regex "/ab[^](]x|/y"': "r1",
             r'uri prefix "/a" and uri regex "\\Q/a(\\E|/y"': None,
             'uri prefix "/a" and uri regex "/a[[:alpha:]]+"': "r1"}
    check_lists([[when, None] for when in cases], None, 7)
    for when, compiles in cases.items():
        routes = [routing.SpecRoute("r1", when, {}), routing.SpecRoute("r2", None, {})]
        if compiles is None:
            with pytest.raises(SpecErrors, match="cannot both be required"):
                routing.compile_http(routes)
        else:
            routing.compile_http(routes)


def test_a_virtual_service_left_out_of_a_proxy_reaches_every_version_and_the_compiled_one_404s() -> None:
    left_out = [{"name": "alt-port", "match": [{"port": 8080}],
                 "route": [{"destination": {"host": "app", "subset": "v2"}}]}]
    compiled = routing.compile_http([routing.SpecRoute("alt-port", "port 8080", {
        "route": [{"destination": {"host": "app", "subset": "v2"}}]})])
    assert compiled[-1]["name"] == routing.NO_ROUTE
    proxies = [envoy.Proxy(port=80), envoy.Proxy(port=8080)]
    proxy = start([envoy.VirtualHost("old.test", left_out, 80, "app"), envoy.VirtualHost("new.test", compiled, 80, "app")],
                  proxies, {("app", 80): ["v1", "v2"]})
    try:
        seen = Counter(answered(proxy.send(proxies[0], "GET", "/", "old.test")) for _ in range(40))
        assert set(seen) == {"v1", "v2"}  # the Service's default route: every version
        result = explain_mod.Rendered("old", virtual_service("old", ["old.test"], left_out)).explain(
            explain_mod.Ask(authority="old.test", port=80))
        assert result.outcome == simulate.OMITTED
        assert answered(proxy.send(proxies[0], "GET", "/", "new.test")) == "404"
        assert answered(proxy.send(proxies[1], "GET", "/", "new.test")) == "v2"
        assert answered(proxy.send(proxies[1], "GET", "/", "old.test")) == "v2"
    finally:
        proxy.close()


def test_a_repeated_query_parameter_is_matched_by_its_first_value_in_envoy_and_explain() -> None:
    http = routing.compile_http([routing.SpecRoute("beta", 'query "beta" exact "true"', {
        "route": [{"destination": {"host": "app", "subset": "v2"}}]}), routing.SpecRoute("default", None, {
            "route": [{"destination": {"host": "app", "subset": "v1"}}]})])
    rendered = explain_mod.Rendered("vs", virtual_service("vs", ["q.test"], http))
    proxy = start([envoy.VirtualHost("q.test", http, 80, "app")], [envoy.Proxy()], {("app", 80): ["v1", "v2"]})
    try:
        for uri, version in (("/publicx?beta=zz&beta=true", "v1"), ("/publicx?beta=true&beta=zz", "v2"),
                             ("/x?beta=tr%75e", "v1"), ("/x?beta=true&", "v2")):
            assert answered(proxy.send(envoy.Proxy(), "GET", uri, "q.test")) == version, uri
            assert rendered.explain(explain_mod.Ask(uri=uri, authority="q.test")).destinations == {version: 100}
    finally:
        proxy.close()


PATH_PARTS = ["/", "a", "b", ".", "..", "%2e", "%2E", "%61", "%2f", "%7e", "\\", ";", "static"]


@pytest.fixture(scope="module")
def path_envoy() -> Iterator[tuple[envoy.Envoy, list[dict[str, Any]]]]:
    http = routing.compile_http([
        routing.SpecRoute("static", 'uri prefix "/static"', {"route": [{"destination": {"host": "app", "subset": "v2"}}]}),
        routing.SpecRoute("default", None, {"route": [{"destination": {"host": "app", "subset": "v1"}}]})])
    proxy = start([envoy.VirtualHost("p.test", http, 80, "app")], [envoy.Proxy()], {("app", 80): ["v1", "v2"]})
    yield proxy, http
    proxy.close()


@few(150)
@given(st.lists(st.sampled_from(PATH_PARTS), max_size=8))
def test_the_path_is_normalised_as_envoy_does(path_envoy: tuple[envoy.Envoy, list[dict[str, Any]]],
                                              parts: list[str]) -> None:
    proxy, http = path_envoy
    path = "/" + "".join(parts)
    answer = proxy.send(envoy.Proxy(), "GET", path, "p.test")
    assert answer.path == normalize_path(path), path
    hit = simulate.match_http(http, simulate.Request(uri=path))
    assert hit is not None and answer.subset == simulate.destinations(hit[1]).popitem()[0], path


def test_a_zero_weight_subset_never_answers() -> None:
    http = [{"name": "split", "route": [
        {"destination": {"host": "app", "subset": "v1"}, "weight": 50},
        {"destination": {"host": "app", "subset": "v2"}, "weight": 50},
        {"destination": {"host": "app", "subset": "v3"}, "weight": 0}]}]
    proxy = start([envoy.VirtualHost("w.test", http, 80, "app")], [envoy.Proxy()], {("app", 80): ["v1", "v2", "v3"]})
    try:
        seen = Counter(answered(proxy.send(envoy.Proxy(), "GET", "/", "w.test")) for _ in range(80))
    finally:
        proxy.close()
    assert set(seen) == {"v1", "v2"}
    assert explain_mod.route_details(http[0]) == {} and simulate.destinations(http[0]) == {"v1": 50, "v2": 50}


# --------------------------------------------------------------------------- rewrite, redirect, direct responses


def test_rewrites_redirects_and_direct_responses_answer_in_envoy_as_explain_says(tmp_path: Path) -> None:
    from tests.conftest import build_file_tree
    from tests.test_route_features import APP, ENV

    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/shop.yaml": APP})
    rendering = render_repo(repo, cache=False)
    vs = next(o for o in rendering.objects if o.kind == "VirtualService")
    rendered = explain_mod.Rendered(vs.path, vs.obj, {}, ["v1", "v2"])
    http = vs.obj["spec"]["http"]
    host = vs.obj["spec"]["hosts"][0]
    proxy = start([envoy.VirtualHost("shop", http, 80, host)], [envoy.Proxy()], {(host, 80): ["v1", "v2"]})
    try:
        for uri in ("/v1/cart?id=7", "/v1/", "/moved/x?a=1", "/legacy", "/api/cart?x=1", "/api/", "/x/../api/a%2Fb",
                    "/other"):
            result = rendered.explain(explain_mod.Ask(uri=uri))
            answer = proxy.send(envoy.Proxy(), "GET", uri, "shop", {"x-debug": "1"})
            if result.status is not None:
                assert (answer.status, answer.subset) == (result.status, None), uri
                assert answer.headers.get("location") == result.details.get("location"), uri
                continue
            assert answer.subset in {v for v, w in result.destinations.items() if w}, uri
            forwarded = result.details.get("forwardedPath", target(result.request))
            assert answer.path == forwarded, uri
            assert answer.upstream_headers["host"] == result.details.get("forwardedAuthority", "shop"), uri
            if result.spec_route == "api":
                assert answer.upstream_headers.get("x-api") == "1" and "x-debug" not in answer.upstream_headers
                assert answer.headers.get("x-served-by") == "shop"
        direct = proxy.send(envoy.Proxy(), "GET", "/legacy", "shop")
        assert direct.status == 410
    finally:
        proxy.close()


# --------------------------------------------------------------------------- other hosts, no subsets


FAN_OUT_APPS = {
    "apps/productpage.yaml": """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: productpage, namespace: shop}
spec:
  service: {host: productpage, port: 9080}
  versions:
    v1: {labels: {version: v1}}
  routes:
    - name: reviews
      when: uri prefix "/reviews"
      to: {host: reviews, port: 9080}
    - name: legacy
      when: uri prefix "/old"
      to: [{subset: v1, weight: 50}, {host: legacy.web.svc.cluster.local, subset: stable, weight: 50}]
    - name: default
      to: v1
""",
    "apps/reviews.yaml": """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: reviews, namespace: shop}
spec:
  service: {host: reviews, port: 9080}
  routes:
    - name: default
""",
    "environments/dev.yaml": """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  externalHosts: [legacy.web.svc.cluster.local]
""",
}


def test_fan_out_and_services_without_versions_route_in_envoy_as_explain_says(tmp_path: Path) -> None:
    for rel, text in FAN_OUT_APPS.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    rendering = render_repo(tmp_path, cache=False)
    vss = {o.app: o for o in rendering.objects if o.kind == "VirtualService"}
    subsets = {("productpage.shop.svc.cluster.local", 9080): ["v1"], ("reviews.shop.svc.cluster.local", 9080): [],
               ("legacy.web.svc.cluster.local", 9080): ["stable"]}
    hosts = [envoy.VirtualHost(f"{app}.test", o.obj["spec"]["http"], 9080, o.obj["spec"]["hosts"][0])
             for app, o in vss.items()]
    cases = []
    for app, uri, spec_may in [("productpage", "/reviews/1", {"reviews.shop.svc.cluster.local"}),
                               ("productpage", "/", {"v1"}),
                               ("productpage", "/old/x", {"v1", "stable"}),
                               ("reviews", "/anything", {"reviews.shop.svc.cluster.local"})]:
        rendered = explain_mod.Rendered(vss[app].path, vss[app].obj, {}, ["v1"])
        cases.append((f"{app}.test", rendered.explain(explain_mod.Ask(uri=uri)), spec_may))
    proxy = start(hosts, envoy.proxies_of(r.request for _, r, _ in cases), subsets)
    try:
        seen: set[str] = set()
        for domain, result, spec_may in cases:
            for _ in range(1 if len(spec_may) == 1 else 40):
                got = answered(send(proxy, result.request, domain))
                assert got in expected_subsets(result) and got in spec_may, (domain, result, got)
                seen.add(got)
        assert {"v1", "stable", "reviews.shop.svc.cluster.local"} <= seen
    finally:
        proxy.close()
