"""The Istio teams run, written as specs: each construct of docs/writing-specs.md ("Writing the
Istio you already run") rendered, validated against Istio's CRDs, and refused where Istio is
silent; plus the defects found on the way."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.errors import SpecErrors
from generator.render import analysis, checks, render
from tests import istio_crds
from tests.conftest import build_file_tree, run_meshgen

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  ingress: {selector: {istio: ingressgateway}}
"""


def app_text(name: str, spec: str, namespace: str = "shop") -> str:
    return (f"apiVersion: meshgen.io/v1alpha1\nkind: App\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            "spec:\n" + textwrap.indent(textwrap.dedent(spec), "  "))


def repo(tmp_path: Path, apps: dict[str, str], env: str = ENV) -> Path:
    files = {"environments/dev.yaml": env}
    files.update({f"apps/{name}.yaml": app_text(name, spec) for name, spec in apps.items()})
    return build_file_tree(tmp_path, files)


def rendered(root: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], list[analysis.Finding]]:
    """``{(app, kind): spec}`` of every object rendered in dev, and the analysis findings."""
    rendering = render.render_repo(root, strict=True, cache=False)
    for o in rendering.objects:
        assert istio_crds.problems(o.obj) == [], o.path
    return {(o.app, o.kind): o.obj["spec"] for o in rendering.objects}, analysis.analyze(rendering)


def errors(root: Path) -> list[str]:
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, strict=True, cache=False)
    return [x.format() for x in e.value.errors]


# -- defects ----------------------------------------------------------------------------------------

def test_two_label_domain_on_the_gateway_is_not_taken_for_name_dot_namespace(tmp_path: Path) -> None:
    root = repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        versions: {v1: {labels: {version: v1}}}
        expose: {hosts: [example.com]}
        routes:
          - name: default
            to: v1
        """})
    assert run_meshgen("render", cwd=root).returncode == 0
    proc = run_meshgen("check", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MG103" not in proc.stdout + proc.stderr


def test_deprecated_fault_percent_is_accepted_and_rendered_verbatim(tmp_path: Path) -> None:
    root = repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        versions: {v1: {labels: {version: v1}}}
        routes:
          - name: default
            to: v1
            fault: {delay: {percent: 100, fixedDelay: 5s}}
        """})
    objects, findings = rendered(root)
    assert objects[("web", "VirtualService")]["http"][0]["fault"] == {"delay": {"percent": 100, "fixedDelay": "5s"}}
    assert analysis.errors_of(findings) == []


@pytest.mark.parametrize("percent", [0, 101])
def test_deprecated_fault_percent_outside_1_to_100_is_refused(tmp_path: Path, percent: int) -> None:
    root = repo(tmp_path, {"web": f"""\
        service: {{host: web, port: 80}}
        versions: {{v1: {{labels: {{version: v1}}}}}}
        routes:
          - name: default
            to: v1
            fault: {{delay: {{percent: {percent}, fixedDelay: 5s}}}}
        """})
    [error] = errors(root)
    assert "apps/web.yaml:10:32:" in error and "fault.delay.percent must be between 1 and 100" in error


# -- constructs --------------------------------------------------------------------------------------

FQDN = "{}.shop.svc.cluster.local".format


def test_service_without_versions_renders_a_virtualservice_alone(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {"productpage": """\
        service: {host: productpage, port: 9080}
        routes:
          - name: default
            timeout: 5s
        """}))
    assert set(objects) == {("productpage", "VirtualService")}
    assert objects[("productpage", "VirtualService")] == {
        "hosts": [FQDN("productpage")],
        "http": [{"name": "default", "route": [{"destination": {"host": FQDN("productpage"), "port": {"number": 9080}}}],
                  "timeout": "5s"}]}
    assert findings == []


def test_destinationrule_alone_without_subsets(tmp_path: Path) -> None:
    objects, _ = rendered(repo(tmp_path, {"ratings": """\
        service: {host: ratings, port: 9080}
        trafficPolicy: {connectionPool: {tcp: {maxConnections: 100}}}
        """}))
    assert objects == {("ratings", "DestinationRule"): {
        "host": FQDN("ratings"), "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}}}}


def test_subset_without_labels(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {"egress": """\
        service: {host: istio-egressgateway, port: 443}
        versions:
          cnn: {trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}}}
        """}))
    assert objects[("egress", "DestinationRule")]["subsets"] == [
        {"name": "cnn", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL", "sni": "edition.cnn.com"}}}]


FANOUT = {
    "productpage": """\
        service: {host: productpage, port: 9080}
        versions:
          v1: {labels: {version: v1}}
        expose: {hosts: [bookinfo.example.com]}
        routes:
          - name: reviews
            when: uri prefix "/reviews"
            to: {host: reviews, port: 9080}
          - name: legacy
            when: uri prefix "/old"
            to: [{subset: v1, weight: 90}, {host: legacy.web.svc.cluster.local, subset: stable, weight: 10}]
          - name: default
            to: v1
        """,
    "reviews": """\
        service: {host: reviews, port: 9080}
        routes:
          - name: default
        """,
}
EXTERNAL_ENV = ENV + "  externalHosts: [legacy.web.svc.cluster.local]\n  externalGateways: [istio-system/public-gateway]\n"


def test_fan_out_to_other_hosts_and_ports(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, FANOUT, EXTERNAL_ENV))
    vs = objects[("productpage", "VirtualService")]
    assert vs["hosts"] == [FQDN("productpage"), "bookinfo.example.com"]
    assert vs["gateways"] == ["mesh", "shop/productpage-gateway"]
    by_name = {r["name"]: r["route"] for r in vs["http"]}
    assert by_name["reviews"] == [{"destination": {"host": FQDN("reviews"), "port": {"number": 9080}}}]
    assert by_name["legacy"] == [
        {"destination": {"host": FQDN("productpage"), "port": {"number": 9080}, "subset": "v1"}, "weight": 90},
        {"destination": {"host": "legacy.web.svc.cluster.local", "subset": "stable"}, "weight": 10}]
    assert analysis.errors_of(findings) == []


def test_destination_to_an_unknown_host_is_an_error(tmp_path: Path) -> None:
    [error] = errors(repo(tmp_path, FANOUT))  # legacy.web... is not declared in this environment
    assert error.startswith("apps/productpage.yaml:15:") and "legacy.web.svc.cluster.local" in error
    assert "externalHosts" in error


def test_destination_subset_the_host_lacks_is_an_error(tmp_path: Path) -> None:
    apps = dict(FANOUT, productpage=FANOUT["productpage"].replace("to: {host: reviews, port: 9080}",
                                                                 "to: {host: reviews, subset: v9}"))
    rendering = render.render_repo(repo(tmp_path, apps, EXTERNAL_ENV), cache=False)
    found = [f for f in analysis.errors_of(analysis.analyze(rendering))]
    assert [f.code for f in found] == ["MG101"] and "subset 'v9'" in found[0].message


def test_wildcard_host_bound_only_to_an_external_gateway(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {"frontend": """\
        service: {host: frontend, port: 8080}
        hosts: ["*"]
        gateways: [istio-system/public-gateway]
        routes:
          - name: default
        """}, EXTERNAL_ENV))
    vs = objects[("frontend", "VirtualService")]
    assert vs["hosts"] == ["*"] and vs["gateways"] == ["istio-system/public-gateway"]
    assert findings == []


def test_gateway_selector_servers_and_modes(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {"db-proxy": """\
        service: {host: db-proxy, port: 5432}
        expose:
          selector: {istio: internal-ingressgateway}
          hosts: [db.internal.example.com]
          servers:
            - port: {number: 8443, name: https-8443, protocol: HTTPS}
              tls: {mode: MUTUAL, credentialName: internal-cert}
            - port: {number: 5432, name: tcp-postgres, protocol: TCP}
            - port: {number: 15443, name: tls, protocol: TLS}
              tls: {mode: AUTO_PASSTHROUGH}
        gateways: []
        routes:
          - name: default
        tcp:
          - name: db
            match: [{port: 5432}]
            to: {host: db-proxy, port: 5432}
        """}))
    gw = objects[("db-proxy", "Gateway")]
    assert gw["selector"] == {"istio": "internal-ingressgateway"}
    assert [s["port"]["number"] for s in gw["servers"]] == [8443, 5432, 15443]
    assert all(s["hosts"] == ["db.internal.example.com"] for s in gw["servers"])
    vs = objects[("db-proxy", "VirtualService")]
    assert vs["gateways"] == ["shop/db-proxy-gateway"]
    assert vs["tcp"] == [{"match": [{"port": 5432}],
                          "route": [{"destination": {"host": FQDN("db-proxy"), "port": {"number": 5432}}}]}]
    assert analysis.errors_of(findings) == []


def test_https_without_the_forced_redirect(tmp_path: Path) -> None:
    objects, _ = rendered(repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        expose: {hosts: [shop.example.com], tls: {credentialName: shop-cert}, httpsRedirect: false}
        routes:
          - name: default
        """}))
    servers = objects[("web", "Gateway")]["servers"]
    assert servers[1] == {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["shop.example.com"]}


def test_tcp_route_weights_and_tls_route_by_sni(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {
        "postgres": """\
            service: {host: postgres, port: 5432}
            versions:
              v1: {labels: {version: v1}}
              v2: {labels: {version: v2}}
            tcp:
              - name: default
                match: [{port: 5432}]
                to: {v1: 90, v2: 10}
            """,
        "web": """\
            service: {host: web, port: 443}
            hosts: [shop.example.com]
            tls:
              - name: by-sni
                match: [{port: 443, sniHosts: [shop.example.com]}]
                to: {host: web, port: 443}
            """}))
    assert objects[("postgres", "VirtualService")]["tcp"] == [{"match": [{"port": 5432}], "route": [
        {"destination": {"host": FQDN("postgres"), "port": {"number": 5432}, "subset": "v1"}, "weight": 90},
        {"destination": {"host": FQDN("postgres"), "port": {"number": 5432}, "subset": "v2"}, "weight": 10}]}]
    assert "http" not in objects[("postgres", "VirtualService")]
    assert objects[("web", "VirtualService")]["tls"][0]["match"] == [{"port": 443, "sniHosts": ["shop.example.com"]}]
    assert analysis.errors_of(findings) == []


STRIPE = """\
    service: {host: api.stripe.com, port: 80}
    serviceEntry:
      location: MESH_EXTERNAL
      resolution: DNS
      ports:
        - {number: 80, name: http, protocol: HTTP, targetPort: 443}
    trafficPolicy:
      portLevelSettings:
        - port: {number: 80}
          tls: {mode: SIMPLE}
    """


def test_service_entry_with_tls_origination(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {"stripe": STRIPE}))
    assert objects[("stripe", "ServiceEntry")] == {
        "hosts": ["api.stripe.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 443}]}
    assert objects[("stripe", "DestinationRule")]["host"] == "api.stripe.com"
    assert "subsets" not in objects[("stripe", "DestinationRule")]
    assert findings == []


@pytest.mark.parametrize("change,message", [
    ("resolution: DNS", "resolution: NONE\n      endpoints: [{address: 1.2.3.4}]", ),
    ("resolution: DNS", "resolution: STATIC\n      endpoints: [{address: stripe.internal}]"),
    ("resolution: DNS", "resolution: DNS\n      hosts: ['*']"),
    ("resolution: DNS", "resolution: DNS\n      hosts: ['*.stripe.com']"),
    ("resolution: DNS", "resolution: DNS\n      addresses: [10.0.0.0/8]"),
    ("protocol: HTTP,", "protocol: SMTP,"),
    ("name: http,", "name: Http_1,"),
    ("resolution: DNS", "resolution: DNS_ROUND_ROBIN\n      endpoints: [{address: a.stripe.com}, {address: b.stripe.com}]"),
    ("resolution: DNS", "resolution: DNS\n      endpoints: [{address: a.stripe.com, ports: {grpc: 8080}}]"),
])
def test_service_entry_is_checked_as_istiod_validates_it(tmp_path: Path, change: str, message: str) -> None:
    spec = STRIPE.replace(change, message)
    found = errors(repo(tmp_path, {"stripe": spec}))
    assert found and all(e.startswith("apps/stripe.yaml:") for e in found), found


def test_delegate_virtualservices(tmp_path: Path) -> None:
    objects, findings = rendered(repo(tmp_path, {
        "frontend": """\
            service: {host: frontend, port: 80}
            expose: {hosts: [shop.example.com]}
            routes:
              - name: reviews
                when: uri prefix "/reviews"
                delegate: {name: reviews, namespace: shop}
              - name: default
            """,
        "reviews": """\
            service: {host: reviews, port: 9080}
            delegate: true
            versions:
              v1: {labels: {version: v1}}
            routes:
              - name: default
                when: uri prefix "/reviews"
                to: v1
            """}))
    assert objects[("frontend", "VirtualService")]["http"][0]["delegate"] == {"name": "reviews", "namespace": "shop"}
    assert "route" not in objects[("frontend", "VirtualService")]["http"][0]
    delegate = objects[("reviews", "VirtualService")]
    assert "hosts" not in delegate and "gateways" not in delegate
    assert analysis.errors_of(findings) == []


def test_export_to_on_every_object(tmp_path: Path) -> None:
    objects, _ = rendered(repo(tmp_path, {"stripe": textwrap.dedent(STRIPE) + "exportTo: ['.']\nroutes:\n  - name: default\n"}))
    assert {k: v.get("exportTo") for k, v in objects.items()} == {
        ("stripe", "ServiceEntry"): ["."], ("stripe", "DestinationRule"): ["."], ("stripe", "VirtualService"): ["."]}


@pytest.mark.parametrize("spec,expected", [
    ("service: {host: web}\n", "renders nothing"),
    ("service: {host: web}\nversions: {v1: {labels: {version: v1}}}\nroutes:\n  - name: default\n", "has no destination"),
    ("service: {host: web}\nroutes:\n  - name: a\n    to: [{subset: v1}, {host: x.example.com}]\n", "has no weight"),
    ("service: {host: web}\nroutes:\n  - name: a\n    to: [{host: a.example.com, weight: 60}, {host: b.example.com, weight: 30}]\n",
     "sum to 90"),
    ("service: {host: web}\ndelegate: true\nhosts: [a.example.com]\nroutes:\n  - name: default\n", "delegate"),
    ("service: {host: web}\nroutes:\n  - name: a\ntcp:\n  - name: a\n    to: {host: web}\n", "used twice"),
])
def test_new_fields_refused_where_istio_is_silent(tmp_path: Path, spec: str, expected: str) -> None:
    found = errors(repo(tmp_path, {"web": spec}, EXTERNAL_ENV))
    assert any(expected in e for e in found), found


# -- diff, explain -----------------------------------------------------------------------------------

def test_diff_tells_tcp_weights_service_entries_and_ports_in_words() -> None:
    from generator.gitops import diff

    def vs(spec: dict) -> dict:
        return {"kind": "VirtualService", "spec": spec}

    def route(weights: dict[str, int], port: int = 5432) -> list[dict]:
        return [{"destination": {"host": "db", "subset": v, "port": {"number": port}}, "weight": w}
                for v, w in weights.items()]

    old = vs({"hosts": ["db"], "tcp": [{"match": [{"port": 5432}], "route": route({"v1": 90, "v2": 10})}]})
    new = vs({"hosts": ["db"], "tcp": [{"match": [{"port": 5432}], "route": route({"v1": 80, "v2": 20})}]})
    assert diff.describe("VirtualService", old, new) == ["tcp route 1: v1 90 / v2 10 → v1 80 / v2 20"]
    moved = vs({"hosts": ["db"], "tcp": [{"match": [{"port": 5432}], "route": route({"v1": 90, "v2": 10}, 5433)}]})
    assert diff.describe("VirtualService", old, moved) == [
        "tcp route 1: sends to db:5432/v1, db:5432/v2 → db:5433/v1, db:5433/v2"]
    entry = {"kind": "ServiceEntry", "spec": {"hosts": ["api.stripe.com"], "location": "MESH_EXTERNAL",
                                              "resolution": "DNS", "ports": [{"number": 443, "protocol": "TLS"}]}}
    assert diff.describe("ServiceEntry", None, entry) == [
        "new ServiceEntry for api.stripe.com: MESH_EXTERNAL, resolution DNS, ports 443/TLS"]
    static = {"kind": "ServiceEntry", "spec": {**entry["spec"], "resolution": "STATIC"}}
    assert diff.describe("ServiceEntry", entry, static) == ["resolution DNS → STATIC"]


def test_explain_shows_the_tcp_routes_of_a_virtualservice_without_http(tmp_path: Path) -> None:
    root = repo(tmp_path, {"postgres": """\
        service: {host: postgres, port: 5432}
        versions:
          v1: {labels: {version: v1}}
          v2: {labels: {version: v2}}
        tcp:
          - name: default
            match: [{port: 5432}]
            to: {v1: 90, v2: 10}
        """})
    assert run_meshgen("render", cwd=root).returncode == 0
    proc = run_meshgen("explain", "postgres", "--env", "dev", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "tcp #1 on port 5432 -> v1 90%, v2 10%" in proc.stdout


def test_report_draws_tcp_routes_and_destinations_without_subsets(tmp_path: Path) -> None:
    from generator.report import site

    root = repo(tmp_path, {"postgres": """\
        service: {host: postgres, port: 5432}
        versions:
          v1: {labels: {version: v1}}
          v2: {labels: {version: v2}}
        tcp:
          - name: default
            to: {v1: 90, v2: 10}
        """, "web": """\
        service: {host: web, port: 80}
        routes:
          - name: default
        """})
    routes = {a["app"]: a["routes"] for a in site._routes(render.render_repo(root, cache=False))["dev"]}
    assert routes["postgres"] == [{"name": "tcp #1", "matches": 0, "mirror": None, "mirrorPercent": None,
                                   "split": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]}]
    assert routes["web"][0]["split"] == [{"version": "web.shop.svc.cluster.local", "weight": 100}]


# -- properties of `to` -----------------------------------------------------------------------------

_weights = st.lists(st.integers(0, 100), min_size=1, max_size=5)


@given(_weights, st.booleans())
@settings(max_examples=200, deadline=None)
def test_every_form_of_to_reads_as_weighted_destinations(weights: list[int], as_versions: bool) -> None:
    if as_versions:
        to: Any = {f"v{i}": w for i, w in enumerate(weights)}
        items = checks.destinations(to)
        assert [(d["subset"], d["weight"]) for d in items] == sorted(to.items())
    else:
        to = [{"host": f"h{i}.example.com", "weight": w} for i, w in enumerate(weights)]
        items = checks.destinations(to)
        assert [d["weight"] for d in items] == weights and [d["host"] for d in items] == [t["host"] for t in to]
    assert sum(d["weight"] for d in items) == sum(weights)


@given(st.integers(0, 100), st.booleans())
@settings(max_examples=200, deadline=None)
def test_a_rollout_split_keeps_100_percent_on_stable_and_canary(canary: int, as_list: bool) -> None:
    to: Any = ([{"host": "ratings", "subset": "v1", "weight": 100}, {"host": "ratings", "subset": "v2", "weight": 0}]
               if as_list else "v1")
    out = render._apply_split(to, {"v1": 100 - canary, "v2": canary})
    got = {d["subset"]: d["weight"] for d in checks.destinations(out)}
    assert sum(got.values()) == 100
    assert got == {k: w for k, w in {"v1": 100 - canary, "v2": canary}.items() if w}
    if as_list:
        assert all(d["host"] == "ratings" for d in out)


@given(st.lists(st.integers(0, 100), min_size=2, max_size=4))
@settings(max_examples=25, deadline=None)
def test_destination_weights_must_sum_to_100(tmp_path_factory: pytest.TempPathFactory, weights: list[int]) -> None:
    to = ", ".join(f"{{subset: v{i}, weight: {w}}}" for i, w in enumerate(weights))
    versions = ", ".join(f"v{i}: {{labels: {{version: v{i}}}}}" for i in range(len(weights)))
    root = repo(tmp_path_factory.mktemp("w"), {"web": f"service: {{host: web}}\nversions: {{{versions}}}\n"
                                                      f"routes:\n  - name: default\n    to: [{to}]\n"})
    if sum(weights) == 100:
        render.render_repo(root, cache=False)
    else:
        assert any(f"sum to {sum(weights)}, not 100" in e for e in errors(root))


def test_explain_follows_a_delegate_and_explains_the_delegate_itself(tmp_path: Path) -> None:
    root = repo(tmp_path, {
        "frontend": """\
            service: {host: frontend, port: 80}
            routes:
              - name: reviews
                when: uri prefix "/reviews"
                delegate: {name: reviews, namespace: shop}
              - name: default
            """,
        "reviews": """\
            service: {host: reviews, port: 9080}
            delegate: true
            versions:
              v1: {labels: {version: v1}}
            routes:
              - name: default
                when: uri prefix "/reviews"
                to: v1
            """})
    assert run_meshgen("render", cwd=root).returncode == 0
    root_vs = run_meshgen("explain", "frontend", "--env", "dev", "--uri", "/reviews/1", cwd=root)
    assert 'delegate: {"name": "reviews", "namespace": "shop"}' in root_vs.stdout, root_vs.stdout
    delegate = run_meshgen("explain", "reviews", "--env", "dev", "--uri", "/reviews/1", cwd=root)
    assert "spec route:  default" in delegate.stdout and "v1" in delegate.stdout, delegate.stdout


def test_kubectl_kustomize_builds_the_new_objects(tmp_path: Path) -> None:
    import subprocess

    import yaml

    apps = {**FANOUT, "stripe": STRIPE, "postgres": """\
        service: {host: postgres, port: 5432}
        versions: {v1: {labels: {version: v1}}}
        tcp:
          - name: default
            to: v1
        """}
    root = repo(tmp_path, apps, EXTERNAL_ENV)
    assert run_meshgen("render", cwd=root).returncode == 0
    proc = subprocess.run(["kubectl", "kustomize", str(root / "rendered" / "dev")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(proc.stdout) if d)
    assert kinds == ["DestinationRule"] * 3 + ["Gateway", "ServiceEntry"] + ["VirtualService"] * 3


def test_egress_gateway_tls_passthrough_as_in_istios_task(tmp_path: Path) -> None:
    """Istio's "Egress Gateways" task, TLS passthrough to edition.cnn.com: a ServiceEntry, a
    Gateway on the egress gateway, TLS routes mesh -> gateway -> out, and the gateway's
    DestinationRule with a subset without labels."""
    files = {
        "environments/dev.yaml": ENV,
        "apps/cnn.yaml": app_text("cnn", """\
            service: {host: edition.cnn.com, port: 443}
            serviceEntry:
              location: MESH_EXTERNAL
              resolution: DNS
              ports: [{number: 443, name: tls, protocol: TLS}]
            expose:
              selector: {istio: egressgateway}
              hosts: [edition.cnn.com]
              servers:
                - port: {number: 443, name: tls, protocol: TLS}
                  tls: {mode: PASSTHROUGH}
            tls:
              - name: to-egress
                match: [{gateways: [mesh], port: 443, sniHosts: [edition.cnn.com]}]
                to: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: 443}
              - name: out
                match: [{gateways: [cnn-gateway], port: 443, sniHosts: [edition.cnn.com]}]
                to: {host: edition.cnn.com, port: 443}
            """),
        "apps/egressgateway.yaml": app_text("egressgateway", """\
            service: {host: istio-egressgateway.istio-system.svc.cluster.local}
            versions:
              cnn: {}
            """, namespace="istio-system"),
    }
    objects, findings = rendered(build_file_tree(tmp_path, files))
    assert findings == []
    assert objects[("cnn", "Gateway")]["selector"] == {"istio": "egressgateway"}
    vs = objects[("cnn", "VirtualService")]
    assert vs["hosts"] == ["edition.cnn.com"] and vs["gateways"] == ["mesh", "shop/cnn-gateway"]
    assert [r["route"][0]["destination"]["host"] for r in vs["tls"]] == [
        "istio-egressgateway.istio-system.svc.cluster.local", "edition.cnn.com"]
    assert objects[("egressgateway", "DestinationRule")]["subsets"] == [{"name": "cnn"}]
    # the same route on a port the egress Gateway does not serve is refused by the analysis
    files["apps/cnn.yaml"] = files["apps/cnn.yaml"].replace("gateways: [cnn-gateway], port: 443",
                                                            "gateways: [cnn-gateway], port: 8443")
    _, findings = rendered(build_file_tree(tmp_path / "off", files))
    assert [f.code for f in findings] == ["MG112"]


def test_a_gateway_server_without_port_is_refused_at_its_place(tmp_path: Path) -> None:
    found = errors(repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        expose:
          hosts: [shop.example.com]
          servers:
            - tls: {mode: PASSTHROUGH}
        routes:
          - name: default
        """}))
    assert found and found[0].startswith("apps/web.yaml:9:") and "port" in found[0], found
