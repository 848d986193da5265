"""What the gateway-api target carries beyond a route to the app's versions, and what it still
refuses: every spec is rendered to an ``istio`` and a ``gateway-api`` environment, the Gateway
API objects are checked against the vendored CRDs' schemas and CEL rules (``vendor/gateway-api/``,
standard channel), the Istio objects against Istio's, and ``explain`` must answer alike in both
environments."""

from __future__ import annotations

import pytest

from generator.errors import SpecErrors
from generator.render import explain, output, render
from tests.conftest import build_file_tree, run_meshgen

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  target: {target}
  cluster: {{name: {name}, server: https://{name}.example.com}}
"""
RATINGS = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: ratings, namespace: shop}
spec:
  service: {host: ratings, port: 80}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  routes:
    - name: api
      when: uri exact "/api" or uri prefix "/api/"
      to: v1
      rewrite: {uri: /}
      mirror: {version: v2, percent: 12.5}
      headers: {request: {set: {x-via: mesh}}, response: {remove: [x-debug]}}
      timeout: 2s
    - name: old
      when: uri exact "/old" or uri exact "/older"
      to: v2
      rewrite: {uri: /new, authority: ratings-new.shop.svc.cluster.local}
      mirror: {version: v1}
    - name: split
      when: header "x-split" exact "1"
      to: [{subset: v1, weight: 90}, {host: reviews.books.svc.cluster.local, weight: 10}]
    - name: external
      when: uri exact "/ext" or uri prefix "/ext/"
      to: {host: api.example.com, port: 443}
    - name: other
      when: uri exact "/reviews"
      to: {host: reviews.books.svc.cluster.local}
    - name: default
      to: v1
"""
REVIEWS = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: reviews, namespace: books}
spec:
  service: {host: reviews, port: 9080}
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  routes:
    - name: all
"""
PAYMENTS = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: payments, namespace: shop}
spec:
  service: {host: api.example.com, port: 443}
  serviceEntry:
    ports: [{number: 443, name: tls, protocol: TLS}]
    location: MESH_EXTERNAL
    resolution: DNS
  tls:
    - name: sni
      match: [{sniHosts: [api.example.com], port: 443}]
      to: {host: api.example.com, port: 443}
"""
DB = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: db, namespace: shop}
spec:
  service: {host: db, port: 5432}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  tcp:
    - name: pg
      match: [{port: 5432}]
      to: {v1: 80, v2: 20}
    - name: admin
      match: [{port: 5433}]
      to: v1
"""


def _repo(tmp_path, apps: dict[str, str]):
    files = {f"apps/{name}.yaml": text for name, text in apps.items()}
    for name, target in (("mesh", "istio"), ("gw", "gateway-api")):
        files[f"environments/{name}.yaml"] = ENV.format(name=name, target=target)
    return build_file_tree(tmp_path / "repo", files)


def _problems(rendering) -> list[tuple[str, list[str]]]:
    """Every rendered object's problems against its vendored CRD (schema, then CEL rules)."""
    found = []
    for o in rendering.objects:
        if o.obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            problems = render.gateway_api_schema_problems(o.obj)
        elif o.obj["apiVersion"] == render.ISTIO_API:
            problems = render.istio_schema_problems(o.obj)
        else:
            continue
        if problems:
            found.append((o.path, problems))
    return found


def _objects(rendering, env: str, app: str) -> dict[str, dict]:
    return {o.path.rsplit("/", 1)[1]: o.obj for o in rendering.objects if o.env == env and o.app == app}


def _answer(root, app: str, env: str, **ask) -> tuple:
    e = explain.explain(root, app, env, explain.Ask(**ask))
    return e.outcome, e.spec_route, e.destinations, e.details


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = _repo(tmp_path_factory.mktemp("carried"),
                 {"ratings": RATINGS, "reviews": REVIEWS, "payments": PAYMENTS, "db": DB})
    rendering = render.render_repo(root, cache=False)
    output.write_rendering(root, rendering)
    return root, rendering


def test_every_carried_object_is_valid_against_the_vendored_crds_and_their_cel_rules(rendered):
    _, rendering = rendered
    assert _problems(rendering) == []
    kinds = {o.kind for o in rendering.objects if o.env == "gw"}
    assert kinds >= {"HTTPRoute", "TCPRoute", "TLSRoute", "ReferenceGrant", "ServiceEntry", "DestinationRule",
                     "Service"}


def test_a_route_to_another_host_is_a_backend_ref_to_its_service_with_a_reference_grant(rendered):
    _, rendering = rendered
    objs = _objects(rendering, "gw", "ratings")
    rules = {r["name"]: r for r in objs["httproute.yaml"]["spec"]["rules"]}
    assert rules["split"]["backendRefs"] == [
        {"name": "ratings-v1", "port": 80, "weight": 90},
        {"name": "reviews", "namespace": "books", "port": 9080, "weight": 10}]  # the port of app reviews
    assert rules["other"]["backendRefs"] == [{"name": "reviews", "namespace": "books", "port": 9080, "weight": 100}]
    grant = objs["referencegrant-books.yaml"]
    assert grant["metadata"]["namespace"] == "books"
    assert grant["spec"] == {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                       "namespace": "shop"}], "to": [{"group": "", "kind": "Service"}]}


def test_an_app_without_versions_routes_to_its_own_service_and_keeps_its_traffic_policy(rendered):
    _, rendering = rendered
    objs = _objects(rendering, "gw", "reviews")
    assert sorted(objs) == ["destinationrule.yaml", "httproute.yaml"]
    rule, = objs["httproute.yaml"]["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "reviews", "port": 9080, "weight": 100}]
    # the DestinationRule of the app's own host, as the istio target writes it
    assert objs["destinationrule.yaml"]["spec"] == _objects(rendering, "mesh", "reviews")["destinationrule.yaml"]["spec"]


def test_a_service_entry_is_rendered_as_istio_renders_it_and_routed_to_by_hostname(rendered):
    _, rendering = rendered
    gw, mesh = _objects(rendering, "gw", "payments"), _objects(rendering, "mesh", "payments")
    assert gw["serviceentry.yaml"]["spec"] == mesh["serviceentry.yaml"]["spec"]
    assert rendering.files["rendered/gw/shop/payments/serviceentry.yaml"].split(b"\n", 1)[1].replace(b"gw", b"mesh") \
        == rendering.files["rendered/mesh/shop/payments/serviceentry.yaml"].split(b"\n", 1)[1]
    tls = gw["tlsroute-sni.yaml"]
    assert tls["spec"]["parentRefs"] == [{"group": "networking.istio.io", "kind": "ServiceEntry", "name": "payments",
                                          "port": 443}]
    assert tls["spec"]["hostnames"] == ["api.example.com"]
    assert tls["spec"]["rules"] == [{"name": "sni", "backendRefs": [
        {"group": "networking.istio.io", "kind": "Hostname", "name": "api.example.com", "port": 443, "weight": 100}]}]
    external = next(r for r in _objects(rendering, "gw", "ratings")["httproute.yaml"]["spec"]["rules"]
                    if r["name"] == "external")
    assert external["backendRefs"] == [{"group": "networking.istio.io", "kind": "Hostname", "name": "api.example.com",
                                        "port": 443, "weight": 100}]
    from generator.render import analysis  # the ServiceEntry parents are found, with their ports (MG201)

    assert [f.format() for f in analysis.analyze(rendering) if f.code == "MG201"] == []


def test_mirror_rewrite_headers_and_timeout_are_filters_and_timeouts(rendered):
    _, rendering = rendered
    rules = {r["name"]: r for r in _objects(rendering, "gw", "ratings")["httproute.yaml"]["spec"]["rules"]}
    api = rules["api"]
    assert api["matches"] == [{"path": {"type": "PathPrefix", "value": "/api"}}]
    assert api["timeouts"] == {"request": "2s"}
    assert api["filters"] == [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-via", "value": "mesh"}]}},
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x-debug"]}},
        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "ratings-v2", "port": 80},
                                                    "fraction": {"numerator": 1, "denominator": 8}}}]
    old = rules["old"]["filters"]
    assert old == [
        {"type": "URLRewrite", "urlRewrite": {"hostname": "ratings-new.shop.svc.cluster.local",
                                              "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "ratings-v1", "port": 80}}}]


@pytest.mark.parametrize("ask", [
    {"uri": "/api/x/y"}, {"uri": "/api"}, {"uri": "/apix"}, {"uri": "/old"}, {"uri": "/older"},
    {"uri": "/x", "headers": {"x-split": "1"}}, {"uri": "/ext/a"}, {"uri": "/reviews"}, {"uri": "/"}])
def test_explain_answers_alike_for_the_istio_and_the_gateway_api_environment(rendered, ask):
    root, _ = rendered
    assert _answer(root, "ratings", "gw", **ask) == _answer(root, "ratings", "mesh", **ask)


def test_tcp_and_tls_routes_are_tcproutes_and_tlsroutes_bound_to_the_services_port(rendered):
    root, rendering = rendered
    objs = _objects(rendering, "gw", "db")
    assert "httproute.yaml" not in objs
    pg = objs["tcproute-pg.yaml"]
    assert pg["apiVersion"] == "gateway.networking.k8s.io/v1" and pg["metadata"]["name"] == "db-pg"
    assert pg["spec"] == {"parentRefs": [{"group": "", "kind": "Service", "name": "db", "port": 5432}],
                          "rules": [{"name": "pg", "backendRefs": [{"name": "db-v1", "port": 5432, "weight": 80},
                                                                   {"name": "db-v2", "port": 5432, "weight": 20}]}]}
    assert objs["tcproute-admin.yaml"]["spec"]["parentRefs"][0]["port"] == 5433
    proc = run_meshgen("explain", "db", "--env", "gw", cwd=root)
    mesh = run_meshgen("explain", "db", "--env", "mesh", cwd=root)
    assert proc.returncode == 0 and "on port 5432 -> v1 80%, v2 20%" in proc.stdout, proc.stdout + proc.stderr

    def routes(text: str) -> list[str]:  # TCPRoutes on distinct ports have no order: compare them as a set
        return sorted(line.split(" ", 4)[4] for line in text.splitlines() if line.startswith("  tcp #"))

    assert routes(proc.stdout) == routes(mesh.stdout) == ["on port 5432 -> v1 80%, v2 20%", "on port 5433 -> v1 100%"]
    tls, tls_mesh = (run_meshgen("explain", "payments", "--env", env, cwd=root) for env in ("gw", "mesh"))
    assert tls.returncode == 0, tls.stderr
    assert [l for l in tls.stdout.splitlines() if l.startswith("  tls #")] == \
        [l for l in tls_mesh.stdout.splitlines() if l.startswith("  tls #")] != []


def _refused(tmp_path, app: str, name: str = "ratings") -> list[str]:
    root = _repo(tmp_path, {name: app})
    (root / "environments/mesh.yaml").unlink()
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, cache=False)
    return [err.format() for err in e.value.errors]


def _with(route_lines: str) -> str:
    return RATINGS.split("  routes:\n")[0] + "  routes:\n" + route_lines + "    - name: default\n      to: v1\n"


@pytest.mark.parametrize("lines, expected", [
    ('    - name: p\n      when: uri exact "/p" or uri prefix "/p/"\n      to: v1\n      rewrite: {uri: /v2/}\n',
     "apps/ratings.yaml:13:7: error: route 'p': rewrite uri '/v2/' after the PathPrefix /p: Istio rewrites /p to /v2/ "
     "and /p/x to /v2/x, HTTPRoute's ReplacePrefixMatch /p to /v2 and /p/x to /v2/x cannot be written in an "
     "HTTPRoute (target gateway-api)"),
    ('    - name: p\n      when: uri exact "/p"\n      to: v1\n      rewrite: {uriRegexRewrite: {match: a, rewrite: b}}\n',
     "apps/ratings.yaml:13:7: error: route 'p': a uriRegexRewrite cannot be written in an HTTPRoute"),
    ('    - name: p\n      when: uri exact "/p"\n      to: v1\n      retries: {attempts: 2}\n',
     "apps/ratings.yaml:13:7: error: route 'p': retries cannot be written in an HTTPRoute (target gateway-api)"),
    ('    - name: p\n      when: uri exact "/p"\n      to: v1\n      fault: {abort: {httpStatus: 500, percentage: {value: 1}}}\n',
     "apps/ratings.yaml:13:7: error: route 'p': fault cannot be written in an HTTPRoute"),
    ('    - name: p\n      when: header "x-a" present\n      to: v1\n',
     "apps/ratings.yaml:11:13: error: route 'p': a header presence match cannot be written in an HTTPRoute match"),
    ('    - name: p\n      when: source label "app" = "web"\n      to: v1\n',
     "apps/ratings.yaml:11:13: error: route 'p': source label conditions cannot be written in an HTTPRoute match"),
])
def test_what_gateway_api_cannot_carry_is_still_refused_at_its_place(tmp_path, lines, expected):
    errors = _refused(tmp_path, _with(lines))
    assert any(e.startswith(expected) for e in errors), errors


def test_retries_are_refused_because_the_standard_channel_has_no_retry_field(tmp_path):
    """The refusal says why and shows the override that drops retries where the target is
    gateway-api; written as shown, the render passes, and the istio environment keeps them."""
    proc_root = _repo(tmp_path, {"ratings": _with(
        '    - name: p\n      when: uri exact "/p"\n      to: v1\n      retries: {attempts: 2}\n')})
    proc = run_meshgen("render", cwd=proc_root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "has no retry field (it is experimental)" in proc.stderr, proc.stderr
    shown = "spec: {apps: {<this app>: {spec: {routes: [{name: 'p', retries: null}]}}}}"
    assert shown in " ".join(proc.stderr.split()), proc.stderr
    gw = proc_root / "environments/gw.yaml"
    gw.write_text(gw.read_text() + "  apps: {ratings: {spec: {routes: [{name: 'p', retries: null}]}}}\n")  # under spec
    proc = run_meshgen("render", cwd=proc_root)
    assert proc.returncode == 0, proc.stderr
    mesh = (proc_root / "rendered/mesh/shop/ratings/virtualservice.yaml").read_text()
    assert "attempts: 2" in mesh
    assert not any("retr" in f.read_text() for f in (proc_root / "rendered/gw").rglob("httproute*.yaml"))


def test_spec_gateways_hosts_and_delegates_are_refused_for_the_whole_app(tmp_path):
    app = RATINGS.replace("  routes:\n", "  gateways: [mesh]\n  hosts: [ratings]\n  routes:\n")
    errors = _refused(tmp_path, app)
    assert any(e.startswith("apps/ratings.yaml:9:3: error: app 'ratings': spec.gateways cannot be rendered for "
                            "environment 'gw', whose spec.target is gateway-api") for e in errors), errors
    assert any("spec.hosts cannot be rendered" in e for e in errors), errors


def test_tcp_routes_that_can_take_the_same_connection_are_refused(tmp_path):
    app = DB.replace("      match: [{port: 5433}]\n", "")
    errors = _refused(tmp_path, app, "db")
    assert any("tcp route 'admin': it can take the connections of tcp route 'pg'" in e for e in errors), errors
    app = DB.replace("match: [{port: 5433}]", "match: [{port: 5433, sourceLabels: {app: web}}]")
    errors = _refused(tmp_path / "labels", app, "db")
    assert any("a sourceLabels match cannot be written in a TCPRoute" in e for e in errors), errors


def test_validate_takes_the_apps_own_services_as_existing_backends(rendered):
    """A backendRef to an app's own Service (deployed with the app, not rendered) is no MG203."""
    root, _ = rendered
    proc = run_meshgen("validate", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MG203" not in proc.stdout + proc.stderr


def test_a_grpcroute_carries_a_mirror_and_refuses_a_rewrite(tmp_path):
    app = RATINGS.replace("port: 80}", "port: 80, protocol: grpc}")
    routes = ('    - name: rate\n      when: uri exact "/shop.Ratings/Rate"\n      to: v1\n'
              '      mirror: {version: v2, percent: 10}\n    - name: default\n      to: v1\n')
    root = _repo(tmp_path, {"ratings": app.split("  routes:\n")[0] + "  routes:\n" + routes})
    rendering = render.render_repo(root, cache=False)
    assert _problems(rendering) == []
    rate = _objects(rendering, "gw", "ratings")["grpcroute.yaml"]["spec"]["rules"][0]
    assert rate["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "ratings-v2", "port": 80}, "percent": 10}}]
    (root / "apps/ratings.yaml").write_text((root / "apps/ratings.yaml").read_text().replace(
        "mirror: {version: v2, percent: 10}", "rewrite: {uri: /shop.Ratings/Score}"))
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, cache=False)
    assert any("a rewrite cannot be written in a GRPCRoute" in err.message for err in e.value.errors), e.value
