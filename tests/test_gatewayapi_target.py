"""The Gateway API target end to end: what an environment with ``spec.target: gateway-api``
renders, how its refusals read, ``meshgen explain`` and ``check`` on it, and the rollout bot
stepping ``backendRefs`` weights (real git remote, real Prometheus for the metric checks)."""

from __future__ import annotations

import json

import pytest
import yaml

from generator import targets
from generator.bot import bot
from generator.render import output, render
from generator.errors import SpecErrors
from tests.conftest import build_file_tree, run_meshgen
from tests.example import copy_example
from tests.promfixtures import git, wait_until

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  target: gateway-api
  cluster: {{name: dev, server: https://dev.example.com}}
  prometheus: {{url: {url}}}
{extra}"""
APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {namespace}}}
spec:
  service: {{host: {host}, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}, trafficPolicy: {{loadBalancer: {{simple: LEAST_REQUEST}}}}}}
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
{expose}  routes:
    - name: beta
      when: header "x-beta" exact "1"
      to: v2
    - name: default
      to: v1
      timeout: 1.5s
{rollout}"""


def _repo(tmp_path, namespace="shop", host="ratings", expose="", rollout="", extra="", url="http://127.0.0.1:9"):
    return build_file_tree(tmp_path / "repo", {
        "apps/ratings.yaml": APP.format(namespace=namespace, host=host, expose=expose, rollout=rollout),
        "environments/dev.yaml": ENV.format(url=url, extra=extra)})


def _objects(rendering) -> dict[str, dict]:
    return {o.path.rsplit("/", 1)[1]: o.obj for o in rendering.objects}


def test_an_app_renders_as_httproute_per_version_services_and_destination_rules(tmp_path):
    objs = _objects(render.render_repo(_repo(tmp_path), cache=False))
    assert sorted(objs) == ["destinationrule-v1.yaml", "destinationrule-v2.yaml", "httproute.yaml",
                            "service-v1.yaml", "service-v2.yaml"]
    route = objs["httproute.yaml"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "ratings", "port": 80}]
    beta, default = route["spec"]["rules"]
    assert beta["matches"] == [{"path": {"type": "PathPrefix", "value": "/"},
                                "headers": [{"name": "x-beta", "type": "Exact", "value": "1"}]}]
    assert beta["backendRefs"] == [{"name": "ratings-v2", "port": 80, "weight": 100}]
    assert default["timeouts"] == {"request": "1500ms"}
    assert objs["service-v2.yaml"]["spec"] == {"selector": {"app": "ratings", "version": "v2"},
                                               "ports": [{"name": "http-80", "port": 80, "protocol": "TCP"}]}
    # the app's trafficPolicy reaches every version's Service; the version's own fields over it
    assert objs["destinationrule-v1.yaml"]["spec"] == {"host": "ratings-v1.shop.svc.cluster.local",
                                                       "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
    assert objs["destinationrule-v2.yaml"]["spec"]["trafficPolicy"] == {
        "tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST"}}


def test_an_exposed_app_gets_a_gateway_of_the_environments_class_and_a_route_narrowed_to_its_paths(tmp_path):
    expose = "  expose: {hosts: [ratings.example.com], paths: [/ratings], tls: {credentialName: ratings-cert}}\n"
    objs = _objects(render.render_repo(_repo(tmp_path, expose=expose, extra="  gatewayClassName: istio-edge\n"),
                                       cache=False))
    gw = objs["gateway.yaml"]
    assert gw["spec"]["gatewayClassName"] == "istio-edge"
    assert [(l["name"], l["port"], l["protocol"]) for l in gw["spec"]["listeners"]] == [
        ("http-0", 80, "HTTP"), ("https-0", 443, "HTTPS")]
    assert gw["spec"]["listeners"][1]["tls"] == {"mode": "Terminate",
                                                 "certificateRefs": [{"kind": "Secret", "name": "ratings-cert"}]}
    north = objs["httproute-gateway.yaml"]
    assert north["spec"]["parentRefs"] == [{"name": "ratings-gateway", "sectionName": "https-0"}]
    assert north["spec"]["hostnames"] == ["ratings.example.com"]
    assert {m["path"]["value"] for r in north["spec"]["rules"] for m in r["matches"]} == {"/ratings"}
    assert objs["httproute.yaml"]["spec"]["parentRefs"][0]["kind"] == "Service"
    redirect = objs["httproute-https-redirect.yaml"]["spec"]
    assert redirect["parentRefs"] == [{"name": "ratings-gateway", "sectionName": "http-0"}]


def test_the_routes_read_back_name_the_apps_host_whichever_route_comes_first(tmp_path):
    """as_virtual_service learns the host from the mesh parent: the Gateway's route read before
    the mesh's must still send to the app's host, not to an empty one."""
    expose = "  expose: {hosts: [ratings.example.com], paths: [/ratings]}\n"
    rendering = render.render_repo(_repo(tmp_path, expose=expose), cache=False)
    objs = [o.obj for o in rendering.objects]
    gateway_first = sorted(objs, key=lambda o: o["metadata"]["name"] != "ratings-gateway")
    for order in (objs, gateway_first):
        vs, _ = targets.get("gateway-api").as_virtual_service(order)
        hosts = {r["destination"]["host"] for http in vs["spec"]["http"] for r in http.get("route") or []}
        assert hosts == {"ratings.shop.svc.cluster.local"}, order


def test_a_service_in_another_namespace_gets_its_mesh_route_there_and_a_reference_grant_for_the_gateway(tmp_path):
    """The mesh's route lives in the Service's namespace (a producer route, for every client:
    one in the app's namespace would be a consumer route, for that namespace's clients only --
    Envoy showed it, tests/test_envoy_gatewayapi.py); the Gateway's route stays in the app's
    namespace and refers to the version Services through a ReferenceGrant."""
    objs = _objects(render.render_repo(_repo(tmp_path / "mesh", host="ratings.backend.svc.cluster.local"), cache=False))
    route = objs["httproute.yaml"]
    assert route["metadata"]["namespace"] == "backend" and "referencegrant.yaml" not in objs
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "ratings", "port": 80}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "ratings-v2", "port": 80, "weight": 100}]
    assert objs["service-v1.yaml"]["metadata"]["namespace"] == "backend"
    expose = "  expose: {hosts: [ratings.example.com]}\n"
    objs = _objects(render.render_repo(_repo(tmp_path / "gw", host="ratings.backend.svc.cluster.local",
                                             expose=expose, extra="  gatewayClassName: istio\n"), cache=False))
    assert objs["httproute.yaml"]["metadata"]["namespace"] == "backend"
    north = objs["httproute-gateway.yaml"]
    assert north["metadata"]["namespace"] == "shop" and north["spec"]["parentRefs"] == [{"name": "ratings-gateway"}]
    assert north["spec"]["rules"][0]["backendRefs"] == [{"name": "ratings-v2", "namespace": "backend", "port": 80,
                                                         "weight": 100}]
    grant = objs["referencegrant.yaml"]
    assert grant["metadata"]["namespace"] == "backend"
    assert grant["spec"] == {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                             "to": [{"group": "", "kind": "Service"}]}


def test_what_an_httproute_cannot_carry_is_refused_at_its_place(tmp_path):
    root = _repo(tmp_path)
    text = (root / "apps/ratings.yaml").read_text().replace(
        '      when: header "x-beta" exact "1"', '      when: header "x-beta" prefix "1"').replace(
        "      timeout: 1.5s", "      timeout: 1.5s\n      retries: {attempts: 2}")
    (root / "apps/ratings.yaml").write_text(text)
    proc = run_meshgen("render", cwd=root)
    assert proc.returncode == 1
    assert ('apps/ratings.yaml:12:13: error: route \'beta\': a header prefix match cannot be written in an '
            'HTTPRoute match (target gateway-api)') in proc.stderr
    assert "apps/ratings.yaml:17:7: error: route 'default': retries cannot be written in an HTTPRoute" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_istio_stays_the_default_and_its_bytes_do_not_change(tmp_path):
    root = copy_example(tmp_path / "ex")
    before = render.render_repo(root, cache=False).files
    for env in (root / "environments").glob("*.yaml"):
        env.write_text(env.read_text().replace("\nspec:\n", "\nspec:\n  target: istio\n", 1))
    assert render.render_repo(root, cache=False).files == before


def test_explain_and_check_answer_for_a_gateway_api_environment(tmp_path):
    root = _repo(tmp_path)
    (root / "apps/ratings.yaml").write_text((root / "apps/ratings.yaml").read_text() + """\
  tests:
    - name: beta-sees-v2
      request: {uri: /x, headers: {x-beta: "1"}}
      expect: {route: beta, versions: {v2: 100}}
""")
    output.write_rendering(root, render.render_repo(root, cache=False))
    assert run_meshgen("check", cwd=root).returncode == 0
    proc = run_meshgen("explain", "ratings", "--env", "dev", "--uri", "/x", "--header", "x-beta=1",
                       "--output", "json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer == {"route": "beta", "destinations": {"v2": 100}, "outcome": "route"}
    text = run_meshgen("explain", "ratings", "--env", "dev", "--uri", "/x", cwd=root).stdout
    assert text.startswith("rendered/dev/shop/ratings/httproute.yaml") and "timeout: 1500ms" in text


ROLLOUT = ('  rollout: {{stable: v1, canary: v2, route: default, steps: [50, 100], interval: {interval}, '
           'policy: {policy}, analysis: {{minRequests: 20, failureLimit: 2}}}}\n')


def _weights(remote, namespace="shop"):
    route = yaml.safe_load(git(remote, "show", f"main:rendered/dev/{namespace}/ratings/httproute.yaml"))
    return [(r["name"], r["weight"]) for r in route["spec"]["rules"][-1]["backendRefs"]]


def test_the_bot_steps_backend_ref_weights_and_promotes(tmp_path, git_remote):
    root = _repo(tmp_path, rollout=ROLLOUT.format(interval="1h", policy="time"))
    output.write_rendering(root, render.render_repo(root, cache=False))
    remote, work = git_remote(root)
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    assert _weights(remote) == [("ratings-v1", 50), ("ratings-v2", 50)]
    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects[0] == "rollout ratings (dev): start canary v2, 0 % -> 50 %"
    assert "rendered/dev/shop/ratings/httproute.yaml" in git(remote, "show", "--name-only", "--format=", "main")
    run_meshgen("rollout", "abort", "ratings", "--env", "dev", "--push", cwd=work, check=True)
    assert _weights(remote) == [("ratings-v1", 100)]
    run_meshgen("rollout", "resume", "ratings", "--env", "dev", "--push", cwd=work, check=True)
    run_meshgen("rollout", "promote", "ratings", "--env", "dev", "--push", cwd=work, check=True)
    assert _weights(remote) == [("ratings-v2", 100)]
    history = run_meshgen("rollout", "history", "ratings", "--output", "json", cwd=work, check=True).stdout
    assert "promote" in history.lower() or "succeeded" in history.lower(), history
    assert run_meshgen("check", cwd=work).returncode == 0


@pytest.mark.prometheus
def test_the_bot_reads_the_per_version_services_series(tmp_path, git_remote, prometheus, mesh_traffic):
    namespace = "gwapi-healthy"

    def serve(weights: dict[str, int]) -> None:
        """The mesh applies ``weights`` ({version: percent}) at once: 80 requests a second split so."""
        for version in ("v1", "v2"):
            rps = 80 * weights.get(version, 0) / 100
            # the client's proxy labels a backendRef's traffic with the version's Service; the
            # server's sidecar series (here under the app's Service) are not read for health
            mesh_traffic.set(namespace, f"ratings-{version}", version, rps=rps, error_ratio=0.0, latency_ms=20,
                             reporter="source")
            mesh_traffic.set(namespace, "ratings", version, rps=rps, error_ratio=0.5 if version == "v2" else 0.0,
                             latency_ms=20)

    serve({"v1": 100})
    root = _repo(tmp_path, namespace=namespace, url=prometheus.url,
                 rollout=ROLLOUT.format(interval="3s", policy="health"))
    output.write_rendering(root, render.render_repo(root, cache=False))
    remote, work = git_remote(root)

    def done() -> bool:
        report = bot.tick(work, push=True)
        serve({name.removeprefix("ratings-"): weight for name, weight in _weights(remote, namespace)})
        return any(o.decision.action.value == "succeed" for o in report.commits)

    wait_until(done, 60, interval=0.4, what="the canary to succeed")
    subjects = [s.split(": ", 1)[1] for s in reversed(git(remote, "log", "--format=%s", "main").splitlines())
                if s.startswith("rollout ") and not s.endswith(" seen applied")]
    assert subjects == ["start canary v2, 0 % -> 50 %", "step canary v2, 50 % -> 100 %", "canary v2 succeeded at 100 %"]
    assert _weights(remote, namespace) == [("ratings-v2", 100)]


def test_diff_across_a_target_change_names_the_objects_and_compares_the_routes(tmp_path):
    from generator.gitops import diff

    root = _repo(tmp_path)
    env = root / "environments/dev.yaml"
    after = render.render_repo(root, cache=False).files
    env.write_text(env.read_text().replace("  target: gateway-api\n", ""))
    before = render.render_repo(root, cache=False).files
    change, = [c for c in diff.compare(before, after).changes if c.app == "ratings"]
    assert change.objects_text() == ("VirtualService removed, DestinationRules changed, HTTPRoute added, "
                                     "2 Services added")
    assert change.traffic == (
        "now written as Gateway API HTTPRoute (istio -> gateway-api); routing unchanged: same routes, same weights",
        "2 Services added: ratings-v1, ratings-v2 (one per version: the routes' backends, "
        "as Gateway API routes have no subsets)")
    weights = (root / "apps/ratings.yaml").read_text().replace("      to: v1\n", "      to: {v1: 90, v2: 10}\n")
    (root / "apps/ratings.yaml").write_text(weights)
    env.write_text(env.read_text().replace("\nspec:\n", "\nspec:\n  target: gateway-api\n", 1))
    moved = render.render_repo(root, cache=False).files
    change, = [c for c in diff.compare(before, moved).changes if c.app == "ratings"]
    assert change.traffic[:2] == ("now written as Gateway API HTTPRoute (istio -> gateway-api)",
                                  "route `default`: v1 100 → v1 90 / v2 10")


def test_objects_alike_across_environments_are_written_as_dump_writes_them(tmp_path):
    """The render writes each object once per environment from one dump; the bytes are what
    dumping each object afresh gives, also for environment names YAML quotes (``on``, ``1``)."""
    root = _repo(tmp_path)
    for name in ("on", "1", "staging"):
        text = (root / "environments/dev.yaml").read_text().replace("name: dev}", f"name: '{name}'}}")
        (root / f"environments/{name}.yaml").write_text(text)
    rendering = render.render_repo(root, cache=False)
    assert {o.env for o in rendering.objects} == {"dev", "on", "1", "staging"}
    for o in rendering.objects:
        assert rendering.files[o.path].decode().split("\n", 1)[1] == render.dump(o.obj), o.path


def test_a_grpc_service_is_routed_by_a_grpcroute(tmp_path):
    root = _repo(tmp_path)
    text = (root / "apps/ratings.yaml").read_text().replace(
        "port: 80}", "port: 80, protocol: grpc}").replace(
        'when: header "x-beta" exact "1"',
        'when: uri exact "/shop.Ratings/Rate" or (uri exact "/shop.Beta" or uri prefix "/shop.Beta/")').replace(
        "      timeout: 1.5s\n", "")
    (root / "apps/ratings.yaml").write_text(text)
    rendering = render.render_repo(root, cache=False)
    objs = _objects(rendering)
    route = objs["grpcroute.yaml"]
    assert route["kind"] == "GRPCRoute" and "httproute.yaml" not in objs
    beta, default = route["spec"]["rules"]
    assert beta["matches"] == [{"method": {"type": "Exact", "service": "shop.Ratings", "method": "Rate"}},
                               {"method": {"type": "Exact", "service": "shop.Beta"}}]
    assert default["matches"] == [{}] and default["backendRefs"] == [{"name": "ratings-v1", "port": 80, "weight": 100}]
    output.write_rendering(root, rendering)
    proc = run_meshgen("explain", "ratings", "--env", "dev", "--uri", "/shop.Beta/Get", "--method", "POST",
                       "--output", "json", cwd=root)
    assert json.loads(proc.stdout)["route"] == "beta", proc.stderr
    (root / "apps/ratings.yaml").write_text(text.replace('uri exact "/shop.Ratings/Rate" or ', 'query "q" exact "1" or '))
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, cache=False)
    assert "cannot be written in a GRPCRoute" in e.value.errors[0].message


def test_a_grpc_service_carries_a_negated_header_through_a_guard_rule_or_refuses_it_placed(tmp_path):
    """The guard rule matches the header's value and sends it to the later route. Under an
    exposed service path, with a later route between, a guard rule needs ``Exact /shop.Beta`` (a
    service without a method), which a GRPCRoute cannot hold: refused at the route whose guard
    it is (the catch-all it carries has no ``when`` to point at), where it had no place."""
    root = _repo(tmp_path)
    text = (root / "apps/ratings.yaml").read_text().replace(
        "port: 80}", "port: 80, protocol: grpc}").replace(
        'when: header "x-beta" exact "1"', 'when: not header "x-beta" exact "1"').replace("      timeout: 1.5s\n", "")
    (root / "apps/ratings.yaml").write_text(text)
    route = _objects(render.render_repo(root, cache=False))["grpcroute.yaml"]
    assert [(r["name"], r["matches"], r["backendRefs"][0]["name"]) for r in route["spec"]["rules"]] == [
        ("beta-guard-1-default", [{"headers": [{"name": "x-beta", "type": "Exact", "value": "1"}]}], "ratings-v1"),
        ("beta", [{}], "ratings-v2")]
    (root / "apps/ratings.yaml").write_text(text.replace(
        "  routes:", "  expose: {hosts: [ratings.example.com], paths: [/shop.Beta]}\n  routes:").replace(
        "    - name: default\n", '    - name: gamma\n      when: header "x-gamma" exact "1"\n      to: v1\n'
        "    - name: default\n"))
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, cache=False)
    assert e.value.errors and all(err.place is not None and err.place.path == "apps/ratings.yaml"
                                  for err in e.value.errors), [err.format() for err in e.value.errors]
    assert "cannot be written in a GRPCRoute" in e.value.errors[0].message


def test_the_report_shows_a_gateway_api_environments_routes_as_the_spec_names_them(tmp_path):
    from generator.report import site

    root = _repo(tmp_path)
    rendering = render.render_repo(root, cache=False)
    app, = site._routes(rendering)["dev"]
    assert app["app"] == "ratings" and app["namespace"] == "shop"
    assert [(r["name"], r["when"], r["split"]) for r in app["routes"]] == [
        ("beta", 'header "x-beta" exact "1"', [{"version": "v2", "weight": 100}]),
        ("default", None, [{"version": "v1", "weight": 100}])]


def _gateway_api_schemas() -> dict[str, dict]:
    """``{kind: openAPIV3Schema of its newest served version}`` of the vendored Gateway API CRDs
    (``vendor/gateway-api/``, standard channel), unknown fields refused as the API server's
    strict field validation refuses them."""
    from tests.conftest import ROOT

    found: dict[str, dict] = {}
    for path in sorted((ROOT / "vendor" / "gateway-api").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served") and version.get("storage"):
                    found[kind] = _strict(version["schema"]["openAPIV3Schema"])
    return found


def _strict(node):
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def test_rendered_gateway_api_objects_validate_against_the_vendored_crds(tmp_path):
    import jsonschema

    schemas = _gateway_api_schemas()
    if not schemas:
        pytest.skip("the Gateway API CRDs are not vendored under vendor/gateway-api/")
    expose = "  expose: {hosts: [ratings.example.com], paths: [/ratings], tls: {credentialName: ratings-cert}}\n"
    root = _repo(tmp_path, host="ratings.backend.svc.cluster.local", expose=expose)
    checked = set()
    for o in render.render_repo(root, cache=False).objects:
        if o.kind in schemas:
            obj = {k: v for k, v in o.obj.items()}
            errors = [e.message for e in jsonschema.Draft7Validator(schemas[o.kind]).iter_errors(obj)]
            assert errors == [], (o.path, errors)
            checked.add(o.kind)
    assert checked >= {"Gateway", "HTTPRoute", "ReferenceGrant"}


def test_validate_checks_the_version_destination_rules_against_istios_schema(tmp_path):
    root = _repo(tmp_path)
    proc = run_meshgen("validate", cwd=root)
    assert proc.returncode == 0 and "valid: 1 app, 1 environment, 5 objects" in proc.stdout, proc.stdout + proc.stderr
    rendering = render.render_repo(root, strict=True, cache=False)
    assert {o.kind for o in rendering.objects} >= {"DestinationRule", "HTTPRoute", "Service"}


def test_validate_checks_the_gateway_api_objects_against_their_vendored_crds(tmp_path, monkeypatch):
    """``meshgen validate`` (a strict render) checks the target's Gateway API objects against
    the vendored CRDs, schema and CEL rules: an HTTPRoute the CRD refuses is a placed error
    there, which a plain render, trusting meshgen's own objects, does not look for."""
    from generator.targets import gatewayapi

    root = _repo(tmp_path)
    real = gatewayapi.GatewayApiTarget.objects

    def broken(self, given):
        made = real(self, given)
        for m in made:
            if m.obj is not None and m.obj.get("kind") == "HTTPRoute":
                m.obj["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1  # the CRD's minimum is 0
        return made
    monkeypatch.setattr(gatewayapi.GatewayApiTarget, "objects", broken)
    assert render.render_repo(root, cache=False).objects
    with pytest.raises(SpecErrors) as info:
        render.render_repo(root, strict=True, cache=False)
    assert any("rendered HTTPRoute of app 'ratings'" in e.format() and "weight" in e.format()
               and e.format().startswith("apps/ratings.yaml:") for e in info.value.errors), info.value.errors


def test_the_shared_dump_never_confuses_a_number_key_with_a_string_key():
    cache = render._DumpCache()
    label = {"meshgen.io/environment": "dev"}
    first = {"metadata": {"labels": label}, "spec": {"1": "a"}}
    second = {"metadata": {"labels": {"meshgen.io/environment": "prod"}}, "spec": {1: "a"}}
    assert cache.dump(first, "dev") == render.dump(first)
    assert cache.dump(second, "prod") == render.dump(second)


@pytest.mark.parametrize("target_name, kind", [("istio", "VirtualService"), ("gateway-api", "HTTPRoute")])
def test_each_target_reads_and_writes_a_routes_weights_through_one_interface(tmp_path, target_name, kind):
    from generator import targets

    root = _repo(tmp_path)
    env = root / "environments/dev.yaml"
    env.write_text(env.read_text().replace("target: gateway-api", f"target: {target_name}"))
    obj = next(o.obj for o in render.render_repo(root, cache=False).objects if o.kind == kind)
    target = targets.get(target_name)
    assert target.weights(obj)["default"] == {"v1": 100}
    target.set_weights(obj, "default", {"v1": 80, "v2": 20})
    assert target.weights(obj)["default"] == {"v1": 80, "v2": 20}
    assert target.weights(obj)["beta"] == {"v2": 100}


def test_the_renderer_bot_diff_and_report_reach_a_target_only_through_the_interface():
    """One module per target behind :mod:`generator.targets`: no module outside that package
    imports a target's module, and none compares an environment's target by name."""
    import ast

    from tests.conftest import ROOT

    outside = [p for p in sorted((ROOT / "generator").rglob("*.py")) if "targets" not in p.parts]
    for path in outside:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("generator.targets", "generator.targets.istio",
                                                                    "generator.targets.gatewayapi"):
                assert node.module == "generator.targets" and \
                    not {a.name for a in node.names} & {"istio", "gatewayapi"}, (path, ast.unparse(node))
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("generator.targets.") for a in node.names), (path, ast.unparse(node))
            elif isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in ("istio", "gateway-api")
                    for c in [node.left, *node.comparators]):
                assert "name" not in ast.unparse(node) and "target" not in ast.unparse(node), \
                    (path, node.lineno, ast.unparse(node))


def test_a_route_list_is_compiled_once_and_a_refusal_is_placed_in_each_apps_own_file(tmp_path, monkeypatch):
    """The same routes in three environments, and in another app (another host), compile
    once in a render (the rules are the app's own, new objects each time), and again in the
    next render; a refused route list is refused again at every app's own place."""
    from generator.routing import httproute_compiler

    calls = []
    real = httproute_compiler.compile_rules

    def counting(routes, **kwargs):
        calls.append([r.name for r in routes])
        return real(routes, **kwargs)

    monkeypatch.setattr(httproute_compiler, "compile_rules", counting)
    root = _repo(tmp_path)
    for env in ("staging", "prod"):
        (root / f"environments/{env}.yaml").write_text(
            ENV.format(url="http://127.0.0.1:9", extra="").replace("name: dev", f"name: {env}"))
    (root / "apps/reviews.yaml").write_text(
        APP.format(namespace="shop", host="reviews", expose="", rollout="").replace("ratings", "reviews"))
    rendering = render.render_repo(root, cache=False)
    assert calls == [["beta", "default"]]
    routes = {(o.env, o.app): o.obj for o in rendering.objects if o.kind == "HTTPRoute"}
    assert len(routes) == 6 and all(r["spec"] == routes["dev", app]["spec"] for (_, app), r in routes.items())
    assert routes["dev", "ratings"]["spec"]["rules"] is not routes["prod", "ratings"]["spec"]["rules"]
    ratings, reviews = routes["dev", "ratings"]["spec"]["rules"], routes["dev", "reviews"]["spec"]["rules"]
    assert [r["backendRefs"] for r in ratings] == [[{"name": "ratings-v2", "port": 80, "weight": 100}],
                                                   [{"name": "ratings-v1", "port": 80, "weight": 100}]]
    assert [r["backendRefs"] for r in reviews] == [[{"name": "reviews-v2", "port": 80, "weight": 100}],
                                                   [{"name": "reviews-v1", "port": 80, "weight": 100}]]
    assert [r["matches"] for r in ratings] == [r["matches"] for r in reviews]
    assert ratings[1]["timeouts"] == {"request": "1500ms"}
    assert render.render_repo(root, cache=False).files == rendering.files
    assert calls == [["beta", "default"]] * 2

    refused = APP.format(namespace="shop", host="ratings", expose="", rollout="").replace(
        'exact "1"', 'prefix "1"')
    (root / "apps/ratings.yaml").write_text(refused)
    (root / "apps/reviews.yaml").write_text(refused.replace("ratings", "reviews"))
    with pytest.raises(SpecErrors) as info:
        render.render_repo(root, cache=False)
    texts = [e.format() for e in info.value.errors]
    line = refused.splitlines().index('      when: header "x-beta" prefix "1"') + 1
    for app in ("ratings", "reviews"):
        assert any(t.startswith(f"apps/{app}.yaml:{line}:") and "prefix" in t for t in texts), texts
