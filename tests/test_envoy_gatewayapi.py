"""The Gateway API target routes in a real Envoy as the spec says.

App specs with drawn ``when`` route lists, versions and weights are rendered by the real
renderer into an environment with ``spec.target: gateway-api`` -- the HTTPRoutes (GRPCRoutes
for a gRPC service) a user would commit. Each route is converted as istiod converts it
(tests/gateway_conversion.py, after istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``)
for each of its parents: the app's Service (the mesh, GAMMA: the sidecars of clients in
several namespaces, on the Service's port) and, for an exposed app, its Gateway (north-south,
by hostname). One Envoy serves a batch of apps (tests/envoy.py); every request it answers
must be the spec's own first-match answer (:func:`generator.routing.conditions.holds` over
the spec's routes in order): the route taken (each spec route sets the response header
``x-route`` to its name, a ``ResponseHeaderModifier`` the target carries), a version the
route gives a positive weight, and 404 where no route takes the request (at the Gateway also
where the path is outside ``expose.paths``, whole segments, or the host is not exposed).
``meshgen explain``, which reads the same objects as the VirtualService Istio converts them
into, must say the same.

Specs the compiler refuses (placed errors, by design: docs/writing-specs.md "Gateway API
target") are left out of the batch and counted; most must compile. The bundled example and the
golden routing cases of tests/golden/routing are checked the same way where the target accepts
them. Without a runnable Envoy the module is skipped with the reason.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from generator.errors import SpecErrors
from generator import targets
from generator.render import explain as explain_mod
from generator.render.render import render_repo
from generator.routing import conditions, httproute
from generator.routing.compiler import spec_route_name
from generator.routing.request import Request
from tests import envoy
from tests.gateway_conversion import convert
from tests.test_gatewayapi_routing import ATOMS, NEGATED_HEADERS
from tests.test_gatewayapi_routing import conditions as http_conditions

BINARY, WHY_NOT = envoy.envoy_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason=WHY_NOT)

NS = "shop"
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  target: gateway-api
  cluster: {name: dev, server: https://dev.example.com}
  prometheus: {url: http://127.0.0.1:9}
"""
VERSIONS = ["v1", "v2", "v3"]
HTTP_URIS = ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b", "/b/a"]
GRPC_ATOMS = ['uri exact "/pkg.S/M"', 'uri exact "/pkg.S/N"', '(uri exact "/pkg.S" or uri prefix "/pkg.S/")',
              '(uri exact "/pkg.T" or uri prefix "/pkg.T/")', 'header "x" exact "1"', 'header "x" regex "[12]"',
              'header "y" exact "1"', 'uri prefix "/"', 'not header "x" exact "1"', 'not header "y" regex "2?"']
GRPC_URIS = ["/pkg.S/M", "/pkg.S/N", "/pkg.S", "/pkg.T/M", "/pkg.Sx/M", "/", "/pkg.S/M/x"]
HTTP_PATHS = [["/a"], ["/a/"], ["/a/b"], ["/b", "/a/b"]]
GRPC_PATHS = [["/pkg.S"], ["/pkg.T"]]
REQUESTS_PER_APP = 30
#: Where a client of the mesh runs: the app's namespace, the Service's (when it is elsewhere), another.
CLIENT_NAMESPACES = [NS, "backend", "other"]


# --------------------------------------------------------------------------- drawn apps


@dataclass
class DrawnApp:
    """One app spec as drawn: ``routes`` are ``(name, when or None, {version: weight})``."""

    name: str
    port: int
    versions: list[str]
    routes: list[tuple[str, str | None, dict[str, int]]]
    grpc: bool = False
    service_ns: str = NS
    expose_paths: list[str] | None = None
    exposed: bool = False
    exposed_hosts: list[str] = field(default_factory=list)
    namespace: str = NS

    def __post_init__(self) -> None:
        if self.exposed and not self.exposed_hosts:
            self.exposed_hosts = [f"{self.name}.example.com"]

    @property
    def host(self) -> str:
        return f"{self.name}.{self.service_ns}.svc.cluster.local"

    @property
    def exposed_host(self) -> str:
        return self.exposed_hosts[0]

    def spec(self) -> dict[str, Any]:
        service: dict[str, Any] = {"host": self.name if self.service_ns == NS else self.host, "port": self.port}
        if self.grpc:
            service["protocol"] = "grpc"
        routes = []
        for name, when, to in self.routes:
            route: dict[str, Any] = {"name": name}
            if when is not None:
                route["when"] = when
            route["to"] = next(iter(to)) if len(to) == 1 else dict(to)
            route["headers"] = {"response": {"set": {"x-route": name}}}
            routes.append(route)
        spec: dict[str, Any] = {"service": service,
                                "versions": {v: {"labels": {"version": v}} for v in self.versions}}
        if self.exposed:
            spec["expose"] = {"hosts": [self.exposed_host], **({"paths": self.expose_paths} if self.expose_paths else {})}
        spec["routes"] = routes
        return {"apiVersion": "meshgen.io/v1alpha1", "kind": "App", "metadata": {"name": self.name, "namespace": NS},
                "spec": spec}


def whens() -> st.SearchStrategy[str]:
    """Conditions over the atoms of tests/test_gatewayapi_routing.py: mostly with ``not`` only
    over single predicates -- path, method and query, and header ``exact`` and ``regex`` (carried
    through guard rules that match the header's value) -- now and then any condition of that
    module's generator."""
    leaf = st.one_of(st.sampled_from(ATOMS), st.sampled_from([a for a in ATOMS if not a.startswith("header")])
                     .map(lambda c: f"not {c}"), st.sampled_from(NEGATED_HEADERS))
    shaped = st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} and {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} or {p[1]})")), max_leaves=3)
    return st.one_of(shaped, shaped, shaped, http_conditions())


def splits(versions: list[str]) -> st.SearchStrategy[dict[str, int]]:
    """One version (100), or weights over several summing to 100 (a zero weight now and then)."""
    one = st.sampled_from(versions).map(lambda v: {v: 100})
    if len(versions) == 1:
        return one

    def split(cuts: list[int]) -> dict[str, int]:
        points = [0, *sorted(cuts), 100]
        return {v: points[i + 1] - points[i] for i, v in enumerate(versions)}

    return st.one_of(one, st.lists(st.sampled_from([0, 10, 25, 50, 75, 90, 100]), min_size=len(versions) - 1,
                                   max_size=len(versions) - 1).map(split))


@st.composite
def apps(draw: st.DrawFn, name: str) -> DrawnApp:
    grpc = draw(st.integers(0, 4)) == 0
    versions = VERSIONS[:draw(st.integers(1, 3))]
    conds = draw(st.lists(st.sampled_from(GRPC_ATOMS) if grpc else whens(), min_size=1, max_size=4))
    catch_all = draw(st.integers(0, 7)) > 0  # guards need a last route without when
    routes = [(f"r{i}", w, draw(splits(versions))) for i, w in enumerate(conds)]
    if catch_all:
        routes.append(("rest", None, draw(splits(versions))))
    exposed = draw(st.booleans())
    paths = draw(st.sampled_from([None, *(GRPC_PATHS if grpc else HTTP_PATHS)])) if exposed else None
    return DrawnApp(name, draw(st.sampled_from([80, 9080])), versions, routes, grpc,
                    draw(st.sampled_from([NS, NS, NS, "backend"])), paths, exposed)


# --------------------------------------------------------------------------- the spec's answer


def in_scope(app: DrawnApp, uri: str) -> bool:
    """At the Gateway: the path is under one of ``expose.paths`` by whole segments
    (docs/writing-specs.md, "Gateway API target")."""
    if not app.expose_paths:
        return True
    return any(not base or uri == base or uri.startswith(base + "/") for base in (p.rstrip("/") for p in app.expose_paths))


def spec_answer(app: DrawnApp, request: Request, at_gateway: bool) -> tuple[str, dict[str, int]] | None:
    """The spec's first route whose ``when`` holds, and its weights; ``None``: no route (404)."""
    if at_gateway and (request.authority not in app.exposed_hosts or not in_scope(app, request.uri)):
        return None
    for name, when, to in app.routes:
        if when is None or conditions.holds(conditions.parse(when), request):
            return name, to
    return None


def drawn_requests(rnd: random.Random, app: DrawnApp, n: int) -> list[tuple[Request, bool]]:
    """``n`` requests ``(request, at the Gateway)``: the mesh's on the app's Service host and
    port; the Gateway's (for an exposed app) on its host, now and then on a host it does not serve."""
    out = []
    for _ in range(n):
        at_gateway = app.exposed and rnd.random() < 0.5
        authority = app.host
        if at_gateway:
            authority = app.exposed_host if rnd.random() < 0.9 else "other.example.com"
        headers = {k: v for k, v in (("x", rnd.choice([None, "1", "2"])), ("y", rnd.choice([None, "1"])))
                   if v is not None}
        query = {} if app.grpc or rnd.random() < 0.5 else {"q": rnd.choice(["1", "2", "3"])}
        out.append((Request(uri=rnd.choice(GRPC_URIS if app.grpc else HTTP_URIS),
                            method="POST" if app.grpc else rnd.choice(["GET", "POST"]), headers=headers,
                            query=query, authority=authority, port=80 if at_gateway else app.port,
                            gateway=f"{NS}/{app.name}-gateway" if at_gateway else "mesh",
                            source_namespace=rnd.choice(CLIENT_NAMESPACES)), at_gateway))
    return out


# --------------------------------------------------------------------------- render, serve, ask


def write_repo(root: Path, drawn: list[DrawnApp]) -> None:
    (root / "apps").mkdir(parents=True, exist_ok=True)
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "environments/dev.yaml").write_text(ENV)
    for app in drawn:
        (root / f"apps/{app.name}.yaml").write_text(yaml.safe_dump(app.spec(), sort_keys=False))


def render_accepted(root: Path, names: list[str]) -> tuple[Any, dict[str, str]]:
    """Render the repository, leaving out each app the target refuses (its errors must be
    placed in its own file, with what to do); ``(rendering, {refused app: first message})``."""
    refused: dict[str, str] = {}
    while True:
        try:
            return render_repo(root, cache=False), refused
        except SpecErrors as e:
            bad: dict[str, str] = {}
            for error in e.errors:
                assert error.place is not None and error.place.path.startswith("apps/"), error.format()
                assert error.hint, error.format()
                bad.setdefault(Path(error.place.path).stem, error.message)
            assert set(bad) <= set(names) - set(refused), e
            for name in bad:
                (root / f"apps/{name}.yaml").unlink()
            refused.update(bad)
            if set(refused) == set(names):
                return None, refused


@dataclass
class Served:
    """Envoy's virtual hosts by proxy and the clusters they send to."""

    hosts: dict[envoy.Proxy, list[envoy.VirtualHost]] = field(default_factory=dict)
    clusters: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def add(self, proxy: envoy.Proxy, host: envoy.VirtualHost) -> None:
        self.hosts.setdefault(proxy, []).append(host)


def serve_routes(objects: list[dict[str, Any]], served: Served, labels: tuple[tuple[str, str], ...] = (),
                 clients: tuple[str, ...] = ("default",)) -> None:
    """Each rendered route, for each of its parents, as istiod converts it: a Service parent
    (GAMMA) in the sidecars of clients in the route's namespace and in ``clients``, on the
    parentRef's port; a Gateway parent in the Gateway's proxy on port 80, one virtual host per
    hostname. ``labels`` tell apart the proxies of several environments in one Envoy."""
    index = httproute.Objects.of(objects)
    for route in (o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")):
        for parent in route["spec"]["parentRefs"]:  # the app's Service: every version's endpoints
            if parent.get("kind") == "Service":
                host = f"{parent['name']}.{parent.get('namespace') or httproute.meta(route)[0]}.svc.cluster.local"
                served.clusters[(host, parent["port"])] = []
    for obj in objects:
        if obj["kind"] == "Service":
            ns, name = httproute.meta(obj)
            served.clusters[(f"{name}.{ns}.svc.cluster.local", obj["spec"]["ports"][0]["port"])] = []
    for route in (o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")):
        ns, name = httproute.meta(route)
        for parent in route["spec"]["parentRefs"]:
            if parent.get("kind") == "Service":
                http = convert([route], index, mesh_port=parent["port"], mesh=True)
                host = f"{parent['name']}.{parent.get('namespace') or ns}.svc.cluster.local"
                for client in dict.fromkeys((ns, *clients)):
                    served.add(envoy.Proxy("mesh", parent["port"], labels, client),
                               envoy.VirtualHost("", http, parent["port"], host, (host,), ns))
            else:
                http = convert([route], index)
                proxy = envoy.Proxy(f"{parent.get('namespace') or ns}/{parent['name']}", 80, labels)
                for hostname in route["spec"]["hostnames"]:
                    served.add(proxy, envoy.VirtualHost(hostname, http, 80))


def check_answer(answer: envoy.Answer, want: tuple[str, dict[str, int]] | None, app: str, context: Any) -> None:
    if want is None:
        assert (answer.status, answer.subset) == (404, None), context
        return
    route, weights = want
    assert answer.status == 200 and answer.subset is not None, context
    assert answer.headers.get("x-route") == route, context
    version = answer.subset.split(".")[0].removeprefix(f"{app}-")
    assert weights.get(version, 0) > 0, context


def check_weights(objects: list[dict[str, Any]], drawn: dict[str, DrawnApp]) -> None:
    """Every rendered rule sends to its spec route's versions with the spec's weights."""
    for route in (o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")):
        app = drawn[route["metadata"]["labels"]["app.kubernetes.io/name"]]
        want = {n: {v: w for v, w in to.items() if w} for n, _, to in app.routes}
        for rule in route["spec"]["rules"]:
            got = {r["name"].removeprefix(f"{app.name}-"): r["weight"] for r in rule["backendRefs"] if r["weight"]}
            assert got == want[spec_route_name(rule["name"], want)], (app.name, rule)


Case = tuple[DrawnApp, Request, bool, tuple[tuple[str, str], ...]]


def explained(objects: list[Any]) -> dict[tuple[str, str], explain_mod.Rendered]:
    """``meshgen explain``'s view of each rendered app, by ``(environment, app)``: its route
    objects read as the VirtualService Istio converts them into."""
    by_app: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for o in objects:
        by_app.setdefault((o.env, o.app), []).append(o.obj)
    out = {}
    for key, objs in by_app.items():
        target = targets.of_objects(objs)
        assert target is not None
        vs, gateways = target.as_virtual_service(objs)
        versions = sorted({d["destination"]["subset"] for r in vs["spec"]["http"] for d in r.get("route") or []})
        out[key] = explain_mod.Rendered("/".join(key), vs, gateways, versions)
    return out


def check_explain(rendered: explain_mod.Rendered, request: Request, want: tuple[str, dict[str, int]] | None,
                  context: Any, exact_weights: bool = True) -> None:
    """``meshgen explain`` names the spec's route and weights (no route: none); without
    ``exact_weights`` (a rollout's weights, which the bot moves), versions among the spec's."""
    result = rendered.explain(explain_mod.Ask(uri=request.uri, method=request.method, headers=request.headers,
                                              query=request.query, authority=request.authority, port=request.port,
                                              source_namespace=request.source_namespace, gateway=request.gateway))
    if want is None:
        assert result.spec_route is None, (context, result)
        return
    assert result.spec_route == want[0], (context, result)
    if exact_weights:
        assert result.destinations == {v: w for v, w in want[1].items() if w}, (context, result)
    else:
        assert set(result.destinations) <= {v for v, w in want[1].items() if w}, (context, result)


def ask_envoy(served: Served, cases: list[Case], rendered: dict[tuple[str, str], explain_mod.Rendered] | None = None,
              env: str = "dev", exact_weights: bool = True) -> None:
    """Start one Envoy with ``served`` and send each case ``(app, request, at the Gateway,
    proxy labels)``: the answer must be the spec's (:func:`check_answer`), and so must
    ``meshgen explain``'s where ``rendered`` is given (environment: the ``env`` proxy label, else ``env``)."""
    proxies = list(served.hosts)
    for app, request, at_gateway, labels in cases:  # a proxy without routes for the host still listens
        proxy = proxy_of(app, request, at_gateway, labels)
        if proxy not in served.hosts:
            served.hosts[proxy] = []
            proxies.append(proxy)
    assert BINARY is not None
    server = envoy.Envoy(BINARY, served.hosts, proxies, served.clusters)
    try:
        for app, request, at_gateway, labels in cases:
            target = request.uri + ("?" + "&".join(f"{k}={v}" for k, v in request.query.items()) if request.query else "")
            answer = server.send(proxy_of(app, request, at_gateway, labels), request.method, target, request.authority,
                                 request.headers)
            want = spec_answer(app, request, at_gateway)
            context = (app.name, app.routes, request, at_gateway, want, answer.status, answer.subset,
                       answer.headers.get("x-route"))
            check_answer(answer, want, app.name, context)
            if rendered is not None:
                check_explain(rendered[(dict(labels).get("env", env), app.name)], request, want, context, exact_weights)
    finally:
        server.close()


def proxy_of(app: DrawnApp, request: Request, at_gateway: bool, labels: tuple[tuple[str, str], ...]) -> envoy.Proxy:
    """The Gateway's proxy (port 80), or the client's sidecar (in its namespace) on the Service's port."""
    if at_gateway:
        return envoy.Proxy(request.gateway, 80, labels)
    return envoy.Proxy("mesh", app.port, labels, request.source_namespace)


def run_batch(tmp_path: Path, drawn: list[DrawnApp], seed: int,
              asks: dict[str, list[tuple[Request, bool]]] | None = None) -> tuple[int, dict[str, str]]:
    """Render, serve and ask one batch (``asks``: the requests of each app, ``(request, at the
    Gateway)``; drawn from ``seed`` otherwise); ``(apps compiled, {app refused: why})``."""
    root = tmp_path / f"repo-{len(list(tmp_path.iterdir()))}"
    write_repo(root, drawn)
    rendering, refused = render_accepted(root, [a.name for a in drawn])
    if rendering is None:
        return 0, refused
    kept = {a.name: a for a in drawn if a.name not in refused}
    objects = [o.obj for o in rendering.objects]
    check_weights(objects, kept)
    served = Served()
    serve_routes(objects, served, clients=tuple(CLIENT_NAMESPACES))
    rnd = random.Random(seed)
    ask_envoy(served, [(app, request, at_gateway, ()) for app in kept.values()
                       for request, at_gateway in (asks[app.name] if asks else
                                                   drawn_requests(rnd, app, REQUESTS_PER_APP))],
              explained(rendering.objects))
    return len(kept), refused


APPS_PER_ENVOY = 10
#: Why the target refuses a drawn app (docs/writing-specs.md, "Gateway API target").
REASONS = ("header absence", "negated header prefix", "two matchers on header", "outranks", "needs guard routes",
           "cannot both be required", "not a whole path segment", "more than", "cannot be written in a GRPCRoute")


def test_drawn_apps_rendered_for_gateway_api_route_in_envoy_as_the_spec_says(tmp_path: Path) -> None:
    tally = {"compiled": 0, "refused": 0, "exposed": 0, "grpc": 0, "other namespace": 0,
             "negated header compiled": 0, "negated header refused": 0}
    reasons: Counter[str] = Counter()

    # no shrinking: a batch restarts Envoy, and the failing app and request are in the message
    @settings(derandomize=True, deadline=None, max_examples=6, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(st.tuples(*(apps(f"a{i}") for i in range(APPS_PER_ENVOY))), st.integers(0, 2**32 - 1))
    def batch(drawn: tuple[DrawnApp, ...], seed: int) -> None:
        compiled, refused = run_batch(tmp_path, list(drawn), seed)
        tally["compiled"] += compiled
        tally["refused"] += len(refused)
        reasons.update(next((k for k in REASONS if k in why), why) for why in refused.values())
        tally["exposed"] += sum(a.exposed for a in drawn)
        tally["grpc"] += sum(a.grpc for a in drawn)
        tally["other namespace"] += sum(a.service_ns != NS for a in drawn)
        for app in drawn:
            if any(when and any(n in when for n in NEGATED_HEADERS) for _, when, _ in app.routes):
                tally["negated header refused" if app.name in refused else "negated header compiled"] += 1

    batch()
    assert tally["compiled"] > tally["refused"], (tally, reasons)  # not vacuous: most drawn apps compile
    assert tally["exposed"] and tally["grpc"] and tally["other namespace"], tally
    # negated headers are drawn, and most apps with one compile (guard rules carry them)
    assert tally["negated header compiled"] > tally["negated header refused"], (tally, reasons)


# --------------------------------------------------------------------------- what Envoy found


def test_a_grpc_service_in_another_namespace_is_reached_through_the_gateway(tmp_path: Path) -> None:
    """The ReferenceGrant names the route's own kind: Istio looks grants up by the referring
    kind (gatewaycommon/references.go ``BackendAllowed``), and one from HTTPRoute let no
    GRPCRoute through -- Envoy answered 500 at the Gateway."""
    app = DrawnApp("g", 80, ["v1", "v2"], [("beta", 'uri exact "/pkg.S/M"', {"v2": 100}), ("rest", None, {"v1": 100})],
                   grpc=True, service_ns="backend", exposed=True)
    at = {"authority": app.exposed_host, "gateway": f"{NS}/g-gateway", "method": "POST"}
    asks = [(Request(uri="/pkg.S/M", **at), True), (Request(uri="/pkg.T/M", **at), True),
            (Request(uri="/pkg.S/M", authority=app.host, port=80, method="POST", source_namespace="other"), False)]
    assert run_batch(tmp_path, [app], 0, {"g": asks}) == (1, {})
    grant = next(o.obj for o in render_repo(tmp_path / "repo-0", cache=False).objects if o.kind == "ReferenceGrant")
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "GRPCRoute", "namespace": NS}]


# --------------------------------------------------------------------------- the bundled example, the golden cases


def meaning_of(app: Any, versions_may: dict[str, dict[str, int]] | None = None) -> DrawnApp:
    """The spec of an effective app (:meth:`generator.spec.config.Repo.effective_app`) as the
    property reads it; ``versions_may``: ``{route: {version: weight}}`` to use instead of ``to``."""
    spec = app.spec
    expose = spec.get("expose") or {}
    routes = []
    for route in spec["routes"]:
        to = route.get("to")
        weights = {to: 100} if isinstance(to, str) else dict(to or {})
        routes.append((route["name"], route.get("when"), (versions_may or {}).get(route["name"], weights)))
    host = spec["service"]["host"]
    service_ns = host.split(".")[1] if "." in host else app.namespace
    return DrawnApp(app.name, spec["service"]["port"], list(spec.get("versions") or {}), routes,
                    spec["service"].get("protocol") == "grpc", service_ns, expose.get("paths"), bool(expose),
                    list(expose.get("hosts") or []), app.namespace)


def mark_routes(path: Path) -> None:
    """Each route of the app file at ``path`` sets the response header ``x-route`` to its name."""
    doc = yaml.safe_load(path.read_text())
    for route in doc["spec"]["routes"]:
        route.setdefault("headers", {}).setdefault("response", {}).setdefault("set", {})["x-route"] = route["name"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


EXAMPLE_URIS = ["/", "/reviews", "/reviews/1", "/reviewsx", "/admin", "/x/../reviews/2"]


def test_the_bundled_example_rendered_for_gateway_api_routes_in_envoy_as_the_spec_says(tmp_path: Path) -> None:
    """Every environment of the bundled example with ``spec.target: gateway-api``; the apps the
    target refuses are left out (ratings: its ``retries``, which HTTPRoute does not carry)."""
    from generator.spec.config import load_repo
    from tests.example import copy_example

    root = copy_example(tmp_path / "ex", ("apps", "environments"))
    for env in (root / "environments").glob("*.yaml"):
        env.write_text(env.read_text().replace("\nspec:\n", "\nspec:\n  target: gateway-api\n", 1))
    for app in (root / "apps").glob("*.yaml"):
        mark_routes(app)
    rendering, refused = render_accepted(root, [p.stem for p in (root / "apps").glob("*.yaml")])
    assert set(refused) == {"ratings"} and "retries" in refused["ratings"], refused
    repo = load_repo(root)
    served, cases = Served(), []
    for env in rendering.envs:
        labels = (("env", env),)
        serve_routes([o.obj for o in rendering.objects if o.env == env], served, labels)
        for name in sorted(repo.apps):
            effective = repo.effective_app(name, env)
            rollout = effective.spec.get("rollout")  # the bot may have moved its weights: both may answer
            app = meaning_of(effective, {rollout["route"]: {rollout["stable"]: 50, rollout["canary"]: 50}}
                             if rollout else None)
            for uri in EXAMPLE_URIS:
                for headers in ({}, {"end-user": "jason"}):
                    cases.append((app, Request(uri=uri, headers=headers, authority=app.host, port=app.port), False,
                                  labels))
                    for host in app.exposed_hosts:
                        cases.append((app, Request(uri=uri, headers=headers, authority=host,
                                                   gateway=f"{app.namespace}/{app.name}-gateway"), True, labels))
    assert {a.name for a, *_ in cases} == {"books", "gw", "reviews"} and len(cases) > 100
    ask_envoy(served, cases, explained(rendering.objects), exact_weights=False)


GOLDEN = Path(__file__).parent / "golden" / "routing"
MARKER = "# --- compiled by meshgen (tests/test_routing.py rewrites below this line) ---\n"


def test_the_golden_routing_cases_rendered_for_gateway_api_route_in_envoy_as_reviewed(tmp_path: Path) -> None:
    """tests/golden/routing as app specs (each route to a version of its own name), rendered
    for gateway-api: each reviewed request takes its reviewed route in Envoy, where the target
    accepts the spec. A case with a ``scope`` is the istio target's rendering of ``expose``
    (the drawn apps above cover exposure) and is left out."""
    drawn, reviewed = [], {}
    for i, path in enumerate(sorted(GOLDEN.glob("*.yaml"))):
        case = yaml.safe_load(path.read_text().partition(MARKER)[0])
        if case.get("scope"):
            continue
        routes = [(r["name"], r.get("when"), {r["name"]: 100}) for r in case["routes"]]
        drawn.append(DrawnApp(f"g{i}", 80, [r["name"] for r in case["routes"]], routes))
        reviewed[f"g{i}"] = (path.stem, case["requests"])
    root = tmp_path / "repo"
    write_repo(root, drawn)
    rendering, refused = render_accepted(root, [a.name for a in drawn])
    kept = [a for a in drawn if a.name not in refused]
    assert len(kept) >= 2, refused  # the regex header cases; the others use a string prefix, absence, ports
    served, cases = Served(), []
    serve_routes([o.obj for o in rendering.objects], served)
    for app in kept:
        for ask in reviewed[app.name][1]:
            fields = {k: v for k, v in ask.items() if k != "route"}
            request = Request(**{"authority": app.host, **fields})
            if request.port != 80 or request.gateway != "mesh":
                continue
            want = spec_answer(app, request, False)
            assert (want and want[0]) == ask["route"], (reviewed[app.name][0], ask)
            cases.append((app, request, False, ()))
    ask_envoy(served, cases, explained(rendering.objects))


def test_a_service_in_another_namespace_routes_the_requests_of_every_clients_namespace(tmp_path: Path) -> None:
    """The mesh's HTTPRoute lives in the Service's namespace: in the app's namespace it was a
    consumer route (GAMMA), which istiod gives only to the sidecars of that namespace (route.go
    ``buildSidecarVirtualHostsForVirtualService``), and a client elsewhere reached every version."""
    app = DrawnApp("c", 9080, ["v1", "v2"], [("beta", 'header "x" exact "1"', {"v2": 100}), ("rest", None, {"v1": 100})],
                   service_ns="backend")
    asks = [(Request(uri="/", headers={"x": "1"}, authority=app.host, port=9080, source_namespace=ns), False)
            for ns in CLIENT_NAMESPACES for _ in range(3)]
    assert run_batch(tmp_path, [app], 0, {"c": asks}) == (1, {})


def test_an_exposed_path_less_its_own_exact_path_routes_in_envoy_as_the_spec_says(tmp_path: Path) -> None:
    """Under ``expose.paths: [/a]`` a route ``not uri exact "/a"`` means ``/a/...`` only, which
    was refused (a ``PathPrefix /a`` takes ``/a`` too). The compiler writes ``PathPrefix /a``
    and gives ``Exact /a`` to the route the spec sends ``/a`` to, which outranks it."""
    app = DrawnApp("e", 80, ["v1", "v2"], [("deep", 'not uri exact "/a"', {"v2": 100}), ("rest", None, {"v1": 100})],
                   expose_paths=["/a"], exposed=True)
    at = {"authority": app.exposed_host, "gateway": f"{NS}/e-gateway"}
    asks = [(Request(uri=u, **at), True) for u in ("/a", "/a/", "/a/b", "/ab", "/b")]
    asks += [(Request(uri=u, authority=app.host, source_namespace=NS), False) for u in ("/a", "/a/b", "/b")]
    assert run_batch(tmp_path, [app], 0, {"e": asks}) == (1, {})
    route = next(o.obj for o in render_repo(tmp_path / "repo-0", cache=False).objects
                 if o.obj["metadata"]["name"] == "e-gateway" and o.kind == "HTTPRoute")
    assert [(r["name"], [m["path"] for m in r["matches"]]) for r in route["spec"]["rules"]] == [
        ("deep", [{"type": "PathPrefix", "value": "/a"}]),
        ("rest", [{"type": "PathPrefix", "value": "/a"}, {"type": "Exact", "value": "/a"}])]
