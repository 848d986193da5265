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
    """What may answer according to ``explain``: a subset of positive weight, or a status;
    the sidecar's catch-all (``PassthroughCluster``) for an authority the proxy does not serve."""
    if result.outcome == simulate.OMITTED and result.request.gateway == "mesh":
        return set(result.versions)
    if result.outcome == explain_mod.NOT_SERVED and result.request.gateway == "mesh":
        return {envoy.PASSTHROUGH}
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
    proxies = [envoy.Proxy(port=80), envoy.Proxy(port=8080), envoy.Proxy(port=80, namespace="ns")]
    proxy = start([envoy.VirtualHost("old.test", left_out, 80, "app"), envoy.VirtualHost("new.test", compiled, 80, "app"),
                   envoy.VirtualHost("", left_out, 80, "app.ns.svc.cluster.local",
                                     ("app.ns.svc.cluster.local", "app.example.com"))],
                  proxies, {("app", 80): ["v1", "v2"], ("app.ns.svc.cluster.local", 80): ["v1", "v2"]})
    try:
        seen = Counter(answered(proxy.send(proxies[0], "GET", "/", "old.test")) for _ in range(40))
        assert set(seen) == {"v1", "v2"}  # the Service's default route: every version
        result = explain_mod.Rendered("old", virtual_service("old", ["old.test"], left_out)).explain(
            explain_mod.Ask(authority="old.test", port=80))
        assert result.outcome == simulate.OMITTED
        assert answered(proxy.send(proxies[0], "GET", "/", "new.test")) == "404"
        # with its hosts as istiod serves them: the Service keeps its own names, an exposed host is gone
        hosts = ("app.ns.svc.cluster.local", "app.example.com")
        rendered = explain_mod.Rendered("ex", virtual_service("ex", list(hosts), left_out), {}, ["v1", "v2"])
        results = [rendered.explain(explain_mod.Ask(authority=a, port=80, source_namespace="ns")) for a in hosts]
        assert [r.outcome for r in results] == [simulate.OMITTED, explain_mod.NOT_SERVED]
        for result in results:
            got = {answered(send(proxy, result.request, result.request.authority)) for _ in range(20)}
            assert got == expected_subsets(result), result.request
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
    beside = envoy.Proxy(namespace="web")  # the app's namespace, where explain's caller is by default
    proxy = start([envoy.VirtualHost("shop", http, 80, host, tuple(vs.obj["spec"]["hosts"]), "web")], [beside],
                  {(host, 80): ["v1", "v2"]})
    try:
        for uri in ("/v1/cart?id=7", "/v1/", "/moved/x?a=1", "/legacy", "/api/cart?x=1", "/api/", "/x/../api/a%2Fb",
                    "/other"):
            result = rendered.explain(explain_mod.Ask(uri=uri))
            answer = proxy.send(beside, "GET", uri, result.request.authority, {"x-debug": "1"})
            if result.status is not None:
                assert (answer.status, answer.subset) == (result.status, None), uri
                assert answer.headers.get("location") == result.details.get("location"), uri
                continue
            assert answer.subset in {v for v, w in result.destinations.items() if w}, uri
            forwarded = result.details.get("forwardedPath", target(result.request))
            assert answer.path == forwarded, uri
            assert answer.upstream_headers["host"] == result.details.get("forwardedAuthority",
                                                                         result.request.authority), uri
            if result.spec_route == "api":
                assert answer.upstream_headers.get("x-api") == "1" and "x-debug" not in answer.upstream_headers
                assert answer.headers.get("x-served-by") == "shop"
        direct = proxy.send(beside, "GET", "/legacy", "shop")
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
# --------------------------------------------------------------------------- hosts, rewrites under exposed paths


def serve_rendered(rendering: Any) -> tuple[list[envoy.VirtualHost], dict[tuple[str, int], list[str]],
                                            dict[str, explain_mod.Rendered]]:
    """Each rendered VirtualService as istiod serves it (its own hosts, its Gateways' servers),
    its subsets, and ``explain``'s view of it by app."""
    hosts, subsets, rendered = [], {}, {}
    for obj in rendering.objects:
        if obj.kind != "VirtualService":
            continue
        gateways = {o.obj["metadata"]["namespace"] + "/" + o.obj["metadata"]["name"]: o.obj
                    for o in rendering.objects if o.kind == "Gateway" and (o.env, o.app) == (obj.env, obj.app)}
        dr = next(o.obj for o in rendering.objects if o.kind == "DestinationRule" and (o.env, o.app) == (obj.env, obj.app))
        versions = [s["name"] for s in dr["spec"]["subsets"]]
        r = explain_mod.Rendered(obj.path, obj.obj, gateways, versions)
        spec = obj.obj["spec"]
        hosts.append(envoy.VirtualHost(spec["hosts"][0], spec["http"], r.service_port(), spec["hosts"][0],
                                       tuple(spec["hosts"]), r.namespace,
                                       {g: gw["spec"]["servers"] for g, gw in gateways.items()}))
        subsets[(dr["spec"]["host"], r.service_port())] = versions
        rendered[obj.app] = r
    return hosts, subsets, rendered


def compare(proxy: envoy.Envoy, results: list[explain_mod.Explanation]) -> list[envoy.Answer]:
    """Send each request ``explain`` answered; Envoy's subset or status must be what it says."""
    answers = []
    for result in results:
        answer = send(proxy, result.request, result.request.authority)
        assert answered(answer) in expected_subsets(result), (result.request, result.outcome, answered(answer))
        if answer.subset is not None and answer.subset != envoy.PASSTHROUGH:
            assert answer.path == result.details.get("forwardedPath", target(result.request)), result.request
        answers.append(answer)
    return answers


SIDECAR_AUTHORITIES = ["reviews", "reviews:8080", "REVIEWS.mesh", "reviews.mesh:9080", "reviews.mesh.svc",
                       "reviews.mesh.svc.cluster.local", "reviews.mesh.svc.cluster.local.", "bookinfo.example.com",
                       "bookinfo.example.com:80", "reviews.other", "shop.example.com"]


def test_a_services_bare_name_is_served_only_to_sidecars_in_its_namespace_in_envoy_and_explain() -> None:
    """istiod gives a sidecar the Service's bare name only in the Service's namespace; elsewhere
    ``reviews`` reaches the catch-all virtual host, not the app's routes."""
    hosts, subsets, rendered = serve_rendered(render_repo(ROOT, ["prod"], cache=False))
    reviews = rendered["reviews"]
    results = [reviews.explain(explain_mod.Ask(uri="/reviews/1", authority=a, source_namespace=ns))
               for ns in ("mesh", "other") for a in SIDECAR_AUTHORITIES]
    results += [reviews.explain(explain_mod.Ask(uri="/reviews/1", source_namespace=ns)) for ns in ("mesh", "other")]
    outcome = {(r.request.source_namespace, r.request.authority): r.outcome for r in results}
    assert outcome["mesh", "reviews"] == outcome["mesh", "reviews:8080"] == simulate.ROUTE
    assert outcome["other", "reviews"] == outcome["other", "reviews:8080"] == explain_mod.NOT_SERVED
    assert outcome["other", "reviews.mesh"] == outcome["other", "reviews.mesh.svc.cluster.local."] == simulate.ROUTE
    assert outcome["other", "bookinfo.example.com"] == simulate.ROUTE
    assert outcome["mesh", "reviews.other"] == outcome["mesh", "shop.example.com"] == explain_mod.NOT_SERVED
    proxy = start(hosts, envoy.proxies_of(r.request for r in results), subsets)
    try:
        answers = compare(proxy, results)
    finally:
        proxy.close()
    by = {(r.request.source_namespace, r.request.authority): a for r, a in zip(results, answers)}
    assert by["other", "reviews"].subset == envoy.PASSTHROUGH and by["mesh", "reviews"].subset in {"v1", "v2"}


def test_a_gateway_serves_only_the_hosts_its_server_and_the_virtual_service_share_in_envoy_and_explain() -> None:
    hosts, subsets, rendered = serve_rendered(render_repo(ROOT, ["prod"], cache=False))
    reviews = rendered["reviews"]
    results = [reviews.explain(explain_mod.Ask(uri="/reviews/1", authority=a, gateway="mesh/reviews-gateway"))
               for a in SIDECAR_AUTHORITIES]
    served = {r.request.authority for r in results if r.outcome == simulate.ROUTE}
    assert served == {"bookinfo.example.com", "bookinfo.example.com:80"}
    assert next(r for r in results if r.request.authority == "reviews").status == 404
    # wildcards, server namespaces and several servers, as istiod intersects them
    vs = virtual_service("w", ["reviews.mesh.svc.cluster.local", "a.example.com", "*.shop.example.com"],
                         [{"name": "all", "route": [{"destination": {"host": "reviews.mesh.svc.cluster.local",
                                                                     "subset": "v1"}}]}], ["ns/gw"])
    servers = [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                "hosts": ["ns/*.example.com", "other/c.example.com"]},
               {"port": {"number": 80, "name": "http2", "protocol": "HTTP"}, "hosts": ["*/reviews.mesh.svc.cluster.local"]}]
    gw = {"kind": "Gateway", "metadata": {"name": "gw", "namespace": "ns"}, "spec": {"servers": servers}}
    wild = explain_mod.Rendered("w", vs, {"ns/gw": gw}, ["v1"])
    asks = ["a.example.com", "b.example.com", "x.shop.example.com", "shop.example.com", "c.example.com",
            "reviews.mesh.svc.cluster.local", "reviews.mesh", "reviews"]
    results_w = [wild.explain(explain_mod.Ask(authority=a, gateway="ns/gw")) for a in asks]
    assert [r.outcome == simulate.ROUTE for r in results_w] == [True, False, True, False, False, True, False, False]
    wild_host = envoy.VirtualHost("w", vs["spec"]["http"], 80, "", tuple(vs["spec"]["hosts"]), "ns", {"ns/gw": servers})
    proxy = start([*hosts, wild_host], envoy.proxies_of(r.request for r in results + results_w),
                  {**subsets, ("reviews.mesh.svc.cluster.local", 80): ["v1"]})
    try:
        compare(proxy, results + results_w)
    finally:
        proxy.close()


def test_a_uri_regex_rewrite_forwards_the_path_envoy_forwards() -> None:
    """``rewrite.uriRegexRewrite`` is Envoy's ``regex_rewrite``: RE2, every match replaced,
    ``\\1`` a group; the query string is kept."""
    def route(name: str, prefix: str, match: str, rewrite: str) -> dict[str, Any]:
        return {"name": name, "match": [{"uri": {"prefix": prefix}}], "rewrite": {"uriRegexRewrite": {
            "match": match, "rewrite": rewrite}}, "route": [{"destination": {"host": "app", "subset": "v1"}}]}
    http = [route("items", "/r/", r"^/r/(\d+)", r"/items/\1"), route("every", "/g", "a*", "-"),
            route("whole", "/n", r"[0-9]+", r"n\0n"), route("none", "/x", "zz", "y")]
    rendered = explain_mod.Rendered("rx", virtual_service("rx", ["rx.test"], http))
    uris = ["/r/12", "/r/12?x=1&y=2", "/r/ab", "/gbaaac", "/n12/3", "/x/a"]
    results = [rendered.explain(explain_mod.Ask(uri=u)) for u in uris]
    assert results[0].details["forwardedPath"] == "/items/12"
    assert results[1].details["forwardedPath"] == "/items/12?x=1&y=2"
    assert "forwardedPath" not in results[2].details and "forwardedPath" not in results[5].details
    assert results[3].details["forwardedPath"] == "-/-g-b-c-"
    proxy = start([envoy.VirtualHost("rx.test", http, 80, "app", ("rx.test",))],
                  envoy.proxies_of(r.request for r in results), {("app", 80): ["v1"]})
    try:
        compare(proxy, results)
    finally:
        proxy.close()


EXPOSED_APP = """\
    apiVersion: meshgen.io/v1alpha1
    kind: App
    metadata: {{name: {name}, namespace: web}}
    spec:
      service: {{host: {name}, port: 80}}
      versions:
        v1: {{labels: {{version: v1}}}}
        v2: {{labels: {{version: v2}}}}
      expose: {{hosts: [{name}.example.com], paths: ["{path}"]}}
      routes:
        - name: api
          when: uri prefix "/{name}/api"
          to: v2
          rewrite: {{uri: /api}}
        - name: default
          to: v1
          rewrite: {{uri: {rewrite}}}
    """


def test_rewrite_uri_under_exposed_paths_replaces_what_each_proxy_matched(tmp_path: Path) -> None:
    """docs/writing-specs.md: at the gateway a route's match carries the exposed path, so
    ``rewrite.uri`` replaces it there; in the mesh it replaces what the route's own ``uri``
    matched, ``/`` without one."""
    from tests.conftest import build_file_tree
    from tests.test_route_features import ENV

    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV,
                                      "apps/shop.yaml": EXPOSED_APP.format(name="shop", path="/shop", rewrite="/beta"),
                                      "apps/strip.yaml": EXPOSED_APP.format(name="strip", path="/strip/", rewrite="/"),
                                      "apps/slash.yaml": EXPOSED_APP.format(name="slash", path="/slash", rewrite="/")})
    hosts, subsets, rendered = serve_rendered(render_repo(repo, cache=False))
    cases = [("shop", "mesh", "/shop/a", "/betashop/a"), ("shop", "web/shop-gateway", "/shop/a", "/beta/a"),
             ("shop", "mesh", "/shop/api/x", "/api/x"), ("shop", "web/shop-gateway", "/shop/api/x", "/api/x"),
             ("shop", "mesh", "/a", "/betaa"),
             ("strip", "mesh", "/strip/a", "/strip/a"), ("strip", "web/strip-gateway", "/strip/a", "/a"),
             ("strip", "web/strip-gateway", "/strip/api/x", "/api/x"),
             ("slash", "web/slash-gateway", "/slash/a", "//a"), ("slash", "mesh", "/slash/a", "/slash/a")]
    results = []
    for app, gateway, uri, forwarded in cases:
        result = rendered[app].explain(explain_mod.Ask(uri=uri, gateway=gateway, source_namespace="web"))
        assert result.details.get("forwardedPath", uri) == forwarded, (app, gateway, uri)
        results.append(result)
    proxy = start(hosts, envoy.proxies_of(r.request for r in results), subsets)
    try:
        answers = compare(proxy, results)
    finally:
        proxy.close()
    assert [a.path for a in answers] == [c[3] for c in cases]
