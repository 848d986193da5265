"""Route tests written in the spec (``spec.tests``): ``meshgen check`` runs them on what the
specs render, in every environment, and fails at the test's place; ``render`` and ``validate``
judge the specs without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.example import copy_example

ENVS = {
    "environments/dev.yaml": """\
        apiVersion: meshgen.io/v1alpha1
        kind: Environment
        metadata: {name: dev}
        spec:
          ingress: {selector: {istio: ingressgateway}}
        """,
    "environments/prod.yaml": """\
        apiVersion: meshgen.io/v1alpha1
        kind: Environment
        metadata: {name: prod}
        spec:
          ingress: {selector: {istio: ingressgateway}}
          apps:
            shop:
              spec:
                tests:
                  - name: prod-beta
                    request: {uri: "/api/cart?beta=1", headers: {x-beta: "yes"}}
                    expect: {route: beta}
        """,
}

APP = """\
    apiVersion: meshgen.io/v1alpha1
    kind: App
    metadata: {name: shop, namespace: web}
    spec:
      service: {host: shop, port: 8080}
      versions:
        v1: {labels: {version: v1}}
        v2: {labels: {version: v2}}
      expose: {hosts: [shop.example.com], paths: [/api]}
      routes:
        - name: beta
          when: header "x-beta" exact "yes" and not uri prefix "/api/admin"
          to: v2
        - name: default
          to: {v1: 90, v2: 10}
      tests:
        - name: beta-users
          request: {uri: /api/cart, headers: {x-beta: "yes"}}
          expect: {route: beta, versions: {v2: 100}}
        - name: admin-is-never-beta
          request: {uri: /api/admin/x, headers: {x-beta: "yes"}, gateway: shop-gateway}
          expect: {route: default, versions: {v1: 90, v2: 10}}
        - request: {uri: /other, gateway: web/shop-gateway}
          expect: {route: null, status: 404}
        - request: {uri: "/x/../api/cart", headers: {x-beta: "yes"}, gateway: shop-gateway}
          expect: {route: beta}
    """


def shop(tmp_path: Path, app: str = APP, **files: str) -> Path:
    repo = build_file_tree(tmp_path, {**ENVS, "apps/shop.yaml": app, **files})
    run_meshgen("render", cwd=repo, check=True)
    return repo


def test_passing_route_tests_let_check_pass(tmp_path: Path) -> None:
    repo = shop(tmp_path)
    assert run_meshgen("check", cwd=repo).returncode == 0


def test_the_bundled_examples_route_tests_pass() -> None:
    assert "tests:" in (ROOT / "apps" / "reviews.yaml").read_text()
    proc = run_meshgen("check", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_a_failing_route_test_fails_check_at_its_place_naming_the_route_it_takes(tmp_path: Path) -> None:
    repo = shop(tmp_path, APP.replace("expect: {route: beta, versions: {v2: 100}}",
                                      "expect: {route: default, versions: {v1: 90, v2: 10}}"))
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert ("apps/shop.yaml:17:7: error: route test 'beta-users': GET /api/cart, header x-beta: yes, through "
            "the mesh: takes route 'beta' {v2: 100}; expected route 'default' and versions {v1: 90, v2: 10} "
            "(in dev, prod)") in proc.stderr
    assert run_meshgen("validate", cwd=repo).returncode == 0  # valid specs; their tests are check's


def test_an_unnamed_test_is_named_by_its_position_and_a_status_is_checked(tmp_path: Path) -> None:
    repo = shop(tmp_path, APP.replace("expect: {route: null, status: 404}", "expect: {status: null}"))
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert ("route test 3: GET /other, through gateway web/shop-gateway: takes no route, answered 404; "
            "expected a forwarded request (in dev, prod)") in proc.stderr


def test_an_unknown_route_or_version_gets_a_hint(tmp_path: Path) -> None:
    repo = shop(tmp_path, APP.replace("expect: {route: beta, versions: {v2: 100}}",
                                      "expect: {route: betta, versions: {v3: 100}}"))
    proc = run_meshgen("check", cwd=repo)
    assert "(hint: the app has no route 'betta'; did you mean 'beta'?; the app has no version 'v3'" in proc.stderr
    repo2 = shop(tmp_path / "b", APP.replace("expect: {route: beta, versions: {v2: 100}}",
                                             "expect: {versions: {v3: 100}}"))
    proc = run_meshgen("check", cwd=repo2)
    assert "(hint: the app has no version 'v3' (versions: v1, v2))" in proc.stderr


def test_a_gateway_the_app_does_not_bind_is_an_error_listing_those_it_binds(tmp_path: Path) -> None:
    repo = shop(tmp_path, APP.replace("gateway: web/shop-gateway}", "gateway: istio-system/public}"))
    proc = run_meshgen("check", cwd=repo)
    assert ("apps/shop.yaml:23:39: error: route test 3: the app's VirtualService does not bind gateway "
            "'istio-system/public' (in dev, prod) (hint: write one of: mesh, web/shop-gateway)") in proc.stderr


def test_an_environment_adds_its_own_tests_and_they_fail_at_the_environment_file(tmp_path: Path) -> None:
    prod = ENVS["environments/prod.yaml"].replace("expect: {route: beta}", "expect: {route: default}")
    repo = shop(tmp_path, **{"environments/prod.yaml": prod})
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert ("environments/prod.yaml:10:13: error: route test 'prod-beta': GET /api/cart?beta=1, header x-beta: "
            "yes, through the mesh: takes route 'beta' {v2: 100}; expected route 'default' (in prod)") in proc.stderr
    assert proc.stderr.count("error:") == 1  # the app's own tests still pass in prod


def test_a_route_under_rollout_is_tested_by_route_not_by_weights(tmp_path: Path) -> None:
    app = APP.replace("      tests:\n", "      rollout: {stable: v1, canary: v2, route: default, steps: [10, 100], "
                      "interval: 1m, policy: time}\n      tests:\n")
    app = app.replace("expect: {route: default, versions: {v1: 90, v2: 10}}", "expect: {versions: {v1: 100}}")
    repo = shop(tmp_path, app, **{"environments/prod.yaml": ENVS["environments/dev.yaml"].replace("dev", "prod")})
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert "route 'default' is under rollout: the bot moves its weights; expect its route, not its versions" in proc.stderr


@pytest.mark.parametrize(("change", "message"), [
    ("expect: {rout: beta, versions: {v2: 100}}", "rout"),
    ("expect: {}", "expect"),
    ("request: {url: /api/cart, headers: {x-beta: \"yes\"}}", "url"),
])
def test_a_malformed_test_is_a_schema_error(tmp_path: Path, change: str, message: str) -> None:
    repo = build_file_tree(tmp_path, {**ENVS, "apps/shop.yaml": APP.replace(
        'request: {uri: /api/cart, headers: {x-beta: "yes"}}\n          expect: {route: beta, versions: {v2: 100}}',
        change if change.startswith("request") else 'request: {uri: /api/cart, headers: {x-beta: "yes"}}\n'
                                                    f"          {change}")})
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert "apps/shop.yaml:" in proc.stderr and message in proc.stderr


def test_a_broken_route_in_the_example_is_caught_by_its_own_test(tmp_path: Path) -> None:
    """Breaking the example's route (v2 -> v3 for jason) is caught by its own test."""
    repo = copy_example(tmp_path)
    spec = repo / "apps" / "reviews.yaml"
    spec.write_text(spec.read_text().replace("      to: v2\n", "      to: v3\n", 1))
    run_meshgen("render", cwd=repo, check=True)
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert "route test 'jason-sees-v2'" in proc.stderr and "takes route 'jason' {v3: 100}" in proc.stderr


def test_a_test_by_the_services_bare_name_from_another_namespace_reaches_no_route(tmp_path: Path) -> None:
    """The bare name is served only beside the Service; through the gateway only the exposed host."""
    repo = shop(tmp_path, APP.replace(
        "        - request: {uri: /other, gateway: web/shop-gateway}\n",
        "        - name: bare-name-elsewhere\n"
        "          request: {uri: /api/cart, authority: shop, sourceNamespace: other}\n"
        "          expect: {route: default}\n"
        "        - name: short-name-at-the-gateway\n"
        "          request: {uri: /api/cart, authority: shop.web, gateway: shop-gateway}\n"
        "          expect: {route: null, status: 404}\n"
        "        - request: {uri: /other, gateway: web/shop-gateway}\n"))
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert ("route test 'bare-name-elsewhere': GET /api/cart, authority shop, from namespace other, through the "
            "mesh: reaches no route: its authority is not served by the VirtualService here "
            "(shop.web.svc.cluster.local, shop.web.svc.cluster.local., shop.web, shop.web.svc, shop.example.com); "
            "the sidecar passes it through (PassthroughCluster); expected route 'default'") in proc.stderr
    assert "short-name-at-the-gateway" not in proc.stderr  # a 404 there, as expected
