"""``meshgen import``: Istio YAML in, specs out; each object reported on one line; the round
trip (import, then render) gives back every object it imported, as a property over
Hypothesis-drawn VirtualServices and DestinationRules within what a spec can express."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.importer import write
from generator.render.render import render_repo
from tests import import_roundtrip as rt
from tests.conftest import build_file_tree, run_meshgen

SAMPLES = rt.SAMPLES / "samples" / "bookinfo" / "networking"


def repo(tmp_path: Path) -> Path:
    return rt.make_repo(tmp_path / "repo", [])


def test_import_writes_a_spec_per_service_and_reports_each_object(tmp_path):
    root = repo(tmp_path)
    proc = run_meshgen("import", str(SAMPLES / "destination-rule-reviews.yaml"),
                       str(SAMPLES / "virtual-service-reviews-jason-v2-v3.yaml"), cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        "imported DestinationRule default/reviews into apps/reviews.yaml",
        "imported VirtualService default/reviews into apps/reviews.yaml"]
    text = (root / "apps" / "reviews.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/app.schema.json\n")
    spec = yaml.safe_load(text)
    assert spec["metadata"] == {"name": "reviews", "namespace": "default"}
    assert spec["spec"]["routes"][0]["when"] == 'header "end-user" exact "jason"'
    assert spec["spec"]["routes"][0]["to"] == "v2"


def test_an_object_that_cannot_be_expressed_is_placed_and_the_others_written(tmp_path):
    root = repo(tmp_path)
    src = build_file_tree(tmp_path / "in", {"vs.yaml": """
        apiVersion: networking.istio.io/v1alpha3
        kind: VirtualService
        metadata: {name: shop, namespace: web}
        spec:
          hosts: [shop]
          http:
          - match:
            - uri: {prefix: /api}
              ignoreUriCase: true
            route:
            - destination: {host: shop}
        ---
        apiVersion: networking.istio.io/v1beta1
        kind: DestinationRule
        metadata: {name: cart, namespace: web}
        spec:
          host: cart
          trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
        """})
    proc = run_meshgen("import", str(src / "vs.yaml"), cwd=root)
    assert proc.returncode == 1
    assert f"{src / 'vs.yaml'}:9:22: error: ignoreUriCase" in proc.stderr
    assert "imported DestinationRule web/cart into apps/cart.yaml" in proc.stdout
    assert not (root / "apps" / "shop.yaml").exists()


def test_kubectl_list_output_with_status_and_managed_fields(tmp_path):
    root = repo(tmp_path)
    src = build_file_tree(tmp_path / "in", {"list.yaml": """
        apiVersion: v1
        kind: List
        metadata: {resourceVersion: ""}
        items:
        - apiVersion: networking.istio.io/v1
          kind: DestinationRule
          metadata:
            name: ratings
            namespace: mesh
            resourceVersion: "4711"
            uid: 6f1c
            managedFields:
            - manager: kubectl
              operation: Update
              fieldsV1: {f:spec: {f:host: {}}}
          spec:
            host: ratings
            subsets:
            - {name: v1, labels: {version: v1}}
          status: {observedGeneration: 1}
        - apiVersion: networking.istio.io/v1
          kind: VirtualService
          metadata: {name: ratings, namespace: mesh, generation: 3}
          spec:
            hosts: [ratings]
            http:
            - route:
              - destination: {host: ratings, subset: v1}
          status: {}
        """})
    proc = run_meshgen("import", str(src), cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "imported VirtualService mesh/ratings into apps/ratings.yaml" in proc.stdout
    spec = yaml.safe_load((root / "apps" / "ratings.yaml").read_text())["spec"]
    assert spec["routes"] == [{"name": "route-1", "to": "v1"}]


def test_an_existing_spec_is_kept_without_force(tmp_path):
    root = repo(tmp_path)
    files = [str(SAMPLES / "destination-rule-reviews.yaml"), str(SAMPLES / "virtual-service-reviews-v3.yaml")]
    assert run_meshgen("import", *files, cwd=root).returncode == 0
    before = (root / "apps" / "reviews.yaml").read_bytes()
    again = [str(SAMPLES / "destination-rule-reviews.yaml"), str(SAMPLES / "virtual-service-reviews-80-20.yaml")]
    proc = run_meshgen("import", *again, cwd=root)
    assert proc.returncode == 1
    assert "apps/reviews.yaml exists; an existing spec is never overwritten (hint: pass --force" in proc.stderr
    assert (root / "apps" / "reviews.yaml").read_bytes() == before
    proc = run_meshgen("import", "--force", *again, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((root / "apps" / "reviews.yaml").read_text())["spec"]["routes"][0]["to"] == {"v1": 80, "v2": 20}


def test_a_second_import_with_env_writes_what_differs_as_the_override(tmp_path):
    root = repo(tmp_path)
    base = [str(SAMPLES / "destination-rule-reviews.yaml"), str(SAMPLES / "virtual-service-reviews-v3.yaml")]
    assert run_meshgen("import", *base, cwd=root).returncode == 0
    other = [str(SAMPLES / "destination-rule-reviews.yaml"), str(SAMPLES / "virtual-service-reviews-50-v3.yaml")]
    proc = run_meshgen("import", "--env", "dev", *other, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "imported VirtualService default/reviews into environments/dev.yaml (spec.apps.reviews)" in proc.stdout
    env = yaml.safe_load((root / "environments" / "dev.yaml").read_text())
    assert env["spec"]["apps"]["reviews"] == {"spec": {"routes": [{"name": "route-1", "to": {"v1": 50, "v3": 50}}]}}
    assert env["spec"]["ingress"] == {"selector": {"istio": "ingressgateway"}}  # the rest kept
    rendering = render_repo(root, cache=False, strict=True)
    vs = next(o.obj for o in rendering.objects if o.kind == "VirtualService")
    original = next(yaml.safe_load_all((SAMPLES / "virtual-service-reviews-50-v3.yaml").read_text()))
    assert rt.normalise(vs) == rt.normalise(original)
    # the same import again: nothing differs from the environment's spec any more
    proc = run_meshgen("import", "--env", "dev", *other, cwd=root)
    assert proc.returncode == 1 and "has an override of app 'reviews' already" in proc.stderr


def test_usage_errors_exit_2(tmp_path):
    root = repo(tmp_path)
    assert run_meshgen("import", cwd=root).returncode == 2
    proc = run_meshgen("import", str(tmp_path / "missing.yaml"), cwd=root)
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    proc = run_meshgen("import", str(SAMPLES / "virtual-service-reviews-v3.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "not a config repository" in proc.stderr


def test_invalid_yaml_is_an_error_with_its_place(tmp_path):
    root = repo(tmp_path)
    src = build_file_tree(tmp_path / "in", {"bad.yaml": "kind: VirtualService\nspec: [a, b\n"})
    proc = run_meshgen("import", str(src / "bad.yaml"), cwd=root)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{src / 'bad.yaml'}:3:1: error: invalid YAML")


# --------------------------------------------------------------------------- the round trip as a property

_WORDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_HEADER = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8).filter(lambda s: s[0] != "-")


def _string_match() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(st.builds(lambda v: {"exact": v}, _WORDS), st.builds(lambda v: {"prefix": v}, _WORDS),
                     st.builds(lambda v: {"regex": f"{v}.*"}, _WORDS))


@st.composite
def _block(draw: Any, uri: str) -> dict[str, Any]:
    block: dict[str, Any] = {"uri": {"exact": uri}}  # distinct exact paths: no block holds another
    if draw(st.booleans()):
        block["headers"] = draw(st.dictionaries(_HEADER, _string_match(), min_size=1, max_size=2))
    if draw(st.booleans()):
        block["queryParams"] = draw(st.dictionaries(_WORDS, st.one_of(_string_match(), st.just({})), max_size=1))
    if draw(st.booleans()):
        block["method"] = {"exact": draw(st.sampled_from(["GET", "POST", "PUT"]))}
    if draw(st.booleans()):  # a header the block does not also require (that could contradict)
        name = draw(_HEADER.filter(lambda h: h not in block.get("headers", {})))
        block["withoutHeaders"] = {name: {"exact": draw(_WORDS)}}
    return {k: v for k, v in block.items() if v}


@st.composite
def istio_objects(draw: Any) -> list[dict[str, Any]]:
    """A DestinationRule and a VirtualService of one Service that a spec can express."""
    n = draw(st.integers(1, 3))
    versions = [f"v{i + 1}" for i in range(n)]
    port = draw(st.sampled_from([None, 9080]))
    host = draw(st.sampled_from(["shop", "shop.web.svc.cluster.local"]))
    dr: dict[str, Any] = {"host": host, "subsets": [{"name": v, "labels": {"version": v}} for v in versions]}
    if draw(st.booleans()):
        dr["trafficPolicy"] = draw(st.sampled_from([{"tls": {"mode": "ISTIO_MUTUAL"}},
                                                    {"connectionPool": {"tcp": {"maxConnections": 10}}}]))
    paths = itertools.count()
    http = []
    for i in range(draw(st.integers(1, 4))):
        route: dict[str, Any] = {}
        if draw(st.booleans()):
            route["name"] = f"r{i}"
        last = i == 0 and draw(st.booleans())
        if not last:
            route["match"] = [draw(_block(f"/p{next(paths)}")) for _ in range(draw(st.integers(1, 3)))]
        chosen = draw(st.lists(st.sampled_from(versions), min_size=1, max_size=n, unique=True))
        dests = [{"destination": {"host": host, "subset": v, **({"port": {"number": port}} if port else {})}}
                 for v in chosen]
        if len(dests) > 1:
            cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(dests) - 1, max_size=len(dests) - 1)))
            bounds = [0, *cuts, 100]
            for d, lo, hi in zip(dests, bounds, bounds[1:]):
                d["weight"] = hi - lo
        route["route"] = dests
        if draw(st.booleans()):
            route["timeout"] = f"{draw(st.integers(1, 30))}s"
        if draw(st.booleans()):
            route["retries"] = {"attempts": draw(st.integers(1, 5)), "perTryTimeout": "2s"}
        http.append(route)
        if last:
            break
    http.sort(key=lambda r: "match" not in r)  # the catch-all, if any, last
    meta = {"namespace": "web"}
    return [{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "shop-dr", **meta},
             "spec": dr},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "shop-vs", **meta},
             "spec": {"hosts": [host], "http": http}}]


_COUNTER = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(objects=istio_objects())
def test_import_then_render_gives_back_each_object(tmp_path, objects):
    root = rt.make_repo(tmp_path / f"r{next(_COUNTER)}", objects)
    source = root / "in.yaml"
    source.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    report = write.import_paths(root, [source])
    assert report.ok, [line.format() for line in report.lines]
    rendering = render_repo(root, cache=False, strict=True)
    rendered = {o.kind: o.obj for o in rendering.objects}
    for original in objects:
        assert rt.normalise(rendered[original["kind"]]) == rt.normalise(original)


def test_without_headers_that_accept_empty_keep_istios_meaning_in_envoy(tmp_path):
    """Istio matches a missing header as "" in withoutHeaders (route.go translateHeaderMatch:
    treat_missing_header_as_empty), so ``withoutHeaders: {x-env: {exact: ""}}`` rejects a request
    without x-env; the import says so in its condition, and Envoy answers both alike."""
    from tests import envoy

    binary, why = envoy.envoy_binary()
    if binary is None:
        import pytest
        pytest.skip(why)
    objects = [
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "a", "namespace": "web"},
         "spec": {"host": "shop", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                              {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "b", "namespace": "web"},
         "spec": {"hosts": ["shop"], "http": [
             {"match": [{"withoutHeaders": {"x-env": {"exact": ""}}}, {"withoutHeaders": {"x-beta": {"regex": "a*"}}}],
              "route": [{"destination": {"host": "shop", "subset": "v2"}}]},
             {"route": [{"destination": {"host": "shop", "subset": "v1"}}]}]}}]
    root = rt.make_repo(tmp_path / "repo", objects)
    (root / "in.yaml").write_text(yaml.safe_dump_all(objects))
    assert write.import_paths(root, [root / "in.yaml"]).ok
    spec = yaml.safe_load((root / "apps" / "shop.yaml").read_text())["spec"]
    assert spec["routes"][0]["when"] == ('(header "x-env" present and not header "x-env" exact "") or '
                                         '(header "x-beta" present and not header "x-beta" regex "a*")')
    rendered = next(o.obj for o in render_repo(root, cache=False).objects if o.kind == "VirtualService")
    diffs = rt.envoy_differences(binary, [("shop", objects[1], rendered, [])])
    assert diffs == {"shop": []}


def _convert(text: str) -> tuple[dict[str, Any], list[str]]:
    from generator.importer import convert, read

    objects, errors = read.read(rt.dedent(text), "in.yaml")
    assert not errors
    result = convert.convert(objects)
    return result.apps, [o.error.format() for o in result.outcomes if o.error]


def test_a_gateway_and_the_virtual_service_bound_to_it_make_one_exposed_app():
    apps, errors = _convert("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: shop-gw, namespace: web}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: [shop.example.com]
            tls: {mode: SIMPLE, credentialName: shop-cert}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop, namespace: web}
        spec:
          hosts: [shop.example.com]
          gateways: [shop-gw, mesh]
          http:
          - match: [{uri: {prefix: /cart}, gateways: [shop-gw]}]
            route: [{destination: {host: cart, port: {number: 8080}}}]
          - route: [{destination: {host: frontend}}]
        """)
    assert not errors
    spec = apps["cart"]["spec"]
    assert spec["expose"] == {"name": "shop-gw", "selector": {"istio": "ingressgateway"}, "servers": [
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["shop.example.com"],
         "tls": {"mode": "SIMPLE", "credentialName": "shop-cert"}}]}
    assert spec["hosts"] == ["shop.example.com"] and spec["gateways"] == ["mesh"]
    assert spec["routes"] == [
        {"name": "route-1", "when": 'uri prefix "/cart" and gateway "web/shop-gw"'},
        {"name": "route-2", "to": {"host": "frontend"}}]
    assert spec["service"] == {"host": "cart", "port": 8080}


def test_a_service_entry_with_its_routes_and_tls_origination_is_one_app():
    text = (rt.SAMPLES / "samples/bookinfo/networking/egress-rule-google-apis.yaml").read_text()
    catch_all = "  - route:\n    - destination:\n        host: www.googleapis.com\n"
    text = text.replace("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule",
                        catch_all + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule")
    apps, errors = _convert(text)
    assert not errors
    spec = apps["www-googleapis-com"]["spec"]
    assert spec["service"] == {"host": "www.googleapis.com"}
    assert spec["serviceEntry"]["resolution"] == "DNS" and "hosts" not in spec["serviceEntry"]
    assert spec["trafficPolicy"]["portLevelSettings"][0]["tls"] == {"mode": "SIMPLE"}
    assert spec["routes"] == [{"name": "route-1", "when": "port 80", "to": {"host": "www.googleapis.com", "port": 443}},
                              {"name": "route-2"}]


def test_routes_that_apply_only_on_some_ports_are_refused_with_the_reason():
    """istiod leaves such a VirtualService out of other ports' configuration (route.go
    BuildHTTPRoutesForVirtualService), where a spec's rendering answers 404."""
    apps, errors = _convert((rt.SAMPLES / "samples/bookinfo/networking/egress-rule-google-apis.yaml").read_text())
    assert len(errors) == 1 and "in.yaml:25:3: error: no match block of it applies to every caller on every port" in errors[0]
    spec = apps["www-googleapis-com"]["spec"]  # the ServiceEntry and DestinationRule all the same
    assert "routes" not in spec and spec["serviceEntry"] and spec["trafficPolicy"]


def test_exportto_must_be_one_for_the_objects_of_an_app():
    apps, errors = _convert("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a, namespace: web}
        spec: {host: shop, exportTo: ["."], trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: b, namespace: web}
        spec:
          hosts: [shop]
          exportTo: ["*"]
          http: [{route: [{destination: {host: shop}}]}]
        """)
    assert errors and "exportTo differs between the objects of one app" in errors[0]


def test_tcp_routes_keep_their_match_blocks_and_weights():
    apps, errors = _convert((rt.SAMPLES / "samples/tcp-echo/tcp-echo-all-v1.yaml").read_text())
    assert not errors, errors
    spec = apps["tcp-echo"]["spec"]
    assert spec["tcp"] == [{"name": "tcp-1", "match": [{"port": 31400}], "to": "v1"}]
    assert spec["expose"]["name"] == "tcp-echo-gateway" and spec["gateways"] == []


def test_standard_input_is_read_as_kubectl_prints_it(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    root = repo(tmp_path)
    text = (SAMPLES / "destination-rule-reviews.yaml").read_text() + "---\n" + \
        (SAMPLES / "virtual-service-reviews-v3.yaml").read_text()
    proc = subprocess.run([sys.executable, "-m", "generator", "import", "-"], cwd=root, input=text, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "imported VirtualService default/reviews into apps/reviews.yaml" in proc.stdout


@st.composite
def everyday_istio(draw: Any) -> list[dict[str, Any]]:
    """A VirtualService as teams write them without subsets: other hosts and ports, weighted
    lists, a Gateway it is bound to (with its hosts) or a shared one outside the repository,
    TCP routes, exportTo; with a DestinationRule of traffic policy only, or none."""
    host = "front"
    others = ["api.backend.svc.cluster.local", "legacy", "www.example.com"]
    objects: list[dict[str, Any]] = []
    meta = {"namespace": "web"}
    gateway = draw(st.booleans())
    spec: dict[str, Any] = {"hosts": [host]}
    if not gateway and draw(st.booleans()):  # a shared Gateway kept outside the repository
        spec = {"hosts": ["shop.example.com"], "gateways": draw(st.sampled_from(
            [["istio-system/public"], ["istio-system/public", "mesh"]]))}
    if gateway:
        gw_hosts = draw(st.sampled_from([["*"], ["shop.example.com"], ["*.example.com"]]))
        objects.append({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", **meta},
                        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                            {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": gw_hosts}]}})
        spec = {"hosts": gw_hosts, "gateways": draw(st.sampled_from([["gw"], ["gw", "mesh"]]))}
    port = draw(st.sampled_from([None, 8080]))

    def destination() -> dict[str, Any]:
        target = draw(st.sampled_from([host, *others]))
        d: dict[str, Any] = {"host": target}
        if target == host:
            if port:
                d["port"] = {"number": port}
        elif draw(st.booleans()):
            d["port"] = {"number": draw(st.sampled_from([80, 9090]))}
        return d

    http = []
    paths = itertools.count()
    n = draw(st.integers(1, 3))
    for i in range(n):
        route: dict[str, Any] = {}
        if i < n - 1 or draw(st.booleans()):
            route["match"] = [draw(_block(f"/q{next(paths)}")) for _ in range(draw(st.integers(1, 2)))]
        dests = [{"destination": destination()}]
        if draw(st.booleans()):
            second = destination()
            if second != dests[0]["destination"]:
                w = draw(st.integers(0, 100))
                dests = [{**dests[0], "weight": w}, {"destination": second, "weight": 100 - w}]
        route["route"] = dests
        if draw(st.booleans()):
            route["timeout"] = "3s"
        http.append(route)
    spec["http"] = http
    if draw(st.booleans()):
        spec["tcp"] = [{"match": [{"port": 5432}], "route": [{"destination": {"host": host, **(
            {"port": {"number": port}} if port else {})}}]}]
    export = draw(st.sampled_from([None, ["."], ["*"], ["web", "payments"]]))
    if export:
        spec["exportTo"] = export
    objects.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "front-vs", **meta}, "spec": spec})
    if draw(st.booleans()):
        dr = {"host": host, "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 5}}}}
        if export:
            dr["exportTo"] = export
        objects.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                        "metadata": {"name": "front-dr", **meta}, "spec": dr})
    return objects


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(objects=everyday_istio())
def test_import_then_render_gives_back_everyday_istio(tmp_path, objects):
    root = rt.make_repo(tmp_path / f"e{next(_COUNTER)}", objects)
    source = root / "in.yaml"
    source.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    report = write.import_paths(root, [source])
    assert report.ok, [line.format() for line in report.lines]
    rendering = render_repo(root, cache=False, strict=True)
    rendered = {o.kind: o.obj for o in rendering.objects}
    for original in objects:
        if original["kind"] == "Gateway":
            assert rendered["Gateway"]["spec"] == original["spec"]
        else:
            assert rt.normalise(rendered[original["kind"]]) == rt.normalise(original)


def test_a_delegate_keeps_the_name_its_parent_routes_to(tmp_path):
    objects = [
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "front", "namespace": "shop"},
         "spec": {"hosts": ["front"], "http": [
             {"match": [{"uri": {"prefix": "/reviews"}}], "delegate": {"name": "reviews-routes", "namespace": "shop"}},
             {"route": [{"destination": {"host": "front"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "reviews-routes", "namespace": "shop"},
         "spec": {"http": [{"match": [{"uri": {"prefix": "/reviews"}}],
                            "route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]}]}}]
    root = rt.make_repo(tmp_path / "repo", objects)
    (root / "in.yaml").write_text(yaml.safe_dump_all(objects))
    report = write.import_paths(root, [root / "in.yaml"])
    assert [line.format() for line in report.lines] == [
        "imported VirtualService shop/front into apps/front.yaml",
        "imported VirtualService shop/reviews-routes into apps/reviews-routes.yaml"]
    rendered = {o.obj["metadata"]["name"]: o.obj for o in render_repo(root, cache=False).objects}
    assert rt.normalise(rendered["front"]) == rt.normalise(objects[0])
    assert rt.normalise(rendered["reviews-routes"]) == rt.normalise(objects[1])


def test_a_shared_gateway_of_another_namespace_stays_outside_with_a_note(tmp_path):
    root = repo(tmp_path)
    src = build_file_tree(tmp_path / "in", {"shop.yaml": """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: public, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/shop.example.com"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop, namespace: web}
        spec:
          hosts: [shop.example.com]
          gateways: [istio-system/public]
          http: [{route: [{destination: {host: shop}}]}]
        """})
    proc = run_meshgen("import", str(src), cwd=root)
    assert proc.returncode == 1
    assert "imported VirtualService web/shop into apps/shop.yaml" in proc.stdout
    assert ("a Gateway shared by VirtualServices of other namespaces (VirtualService web/shop): a spec exposes "
            "a Gateway in its app's own namespace (hint: leave it outside the repository") in proc.stderr
    assert ("note: apps/shop.yaml binds the Gateway istio-system/public, which no app of the repository renders"
            in proc.stdout)
