"""``meshgen diff`` across a change of an environment's ``spec.target`` (istio <-> gateway-api).

Each test builds a real git repository from the bundled example (ratings without its
retries, which an HTTPRoute cannot carry) plus ``shop``, an app whose ``when`` conditions the
gateway-api compiler reorders (an Exact path ranks first) and splits into guards, commits it,
switches an environment's target in a second commit and runs the command line. The summary
must say, per app, whether the routing *means* something else, not how it is written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from generator.gitops import diff
from generator.render import render
from tests.conftest import run_meshgen
from tests.example import copy_example

SHOP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: shop, namespace: mesh}
spec:
  service: {host: shop, port: 9080}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
    v3: {labels: {version: v3}}
  routes:
    - name: beta
      when: header "x-beta" exact "1" and not method exact "POST"
      to: v3
    - name: api
      when: uri prefix "/api/v2/" or query "v" exact "2"
      to: v2
    - name: health
      when: uri exact "/health"
      to: v1
    - name: chrome
      when: header "User-Agent" regex "^.*(Chrome).*$"
      to: {v1: 50, v3: 50}
    - name: default
      to: {v1: 80, v2: 20}
      timeout: 1.5s
"""


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def commit(repo: Path, message: str) -> None:
    run_meshgen("render", cwd=repo, check=True)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "--quiet", "-m", message, cwd=repo)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example plus ``shop`` on the istio target, committed, then ``dev`` switched to
    gateway-api in a second commit."""
    root = copy_example(tmp_path / "config")
    edit(root / "apps/ratings.yaml", "      retries: {attempts: 3, perTryTimeout: 2s}\n", "")
    (root / "apps/shop.yaml").write_text(SHOP)
    sh("git", "init", "--quiet", "--initial-branch=main", cwd=root)
    sh("git", "config", "user.email", "dev@example.com", cwd=root)
    sh("git", "config", "user.name", "Dev", cwd=root)
    commit(root, "Example on the istio target")
    edit(root / "environments/dev.yaml", "\nspec:\n", "\nspec:\n  target: gateway-api\n")
    commit(root, "dev: Gateway API")
    return root


def entries(text: str) -> dict[str, list[str]]:
    """``{entry title: [its lines]}`` of the summary (``books/dev: ...`` -> ``books/dev``)."""
    out: dict[str, list[str]] = {}
    title = None
    for line in text.split("\n--- ", 1)[0].splitlines()[1:]:
        if line and not line.startswith(" "):
            title, _, objects = line.partition(": ")
            out[title] = [objects]
        elif line and title:
            out[title].append(line.strip())
    return out


def test_a_target_change_with_the_same_meaning_says_routing_unchanged(repo: Path) -> None:
    proc = run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True)
    summary = entries(proc.stdout)
    assert summary["books/dev"] == [
        "VirtualService removed, DestinationRules changed, HTTPRoute added, 2 Services added",
        "now written as Gateway API HTTPRoute (istio -> gateway-api); routing unchanged: same routes, same weights",
        "2 Services added: books-v1, books-v2 (one per version: the routes' backends, as Gateway API routes have no subsets)"]
    # rules reordered by HTTPRoute precedence, guards and per-match rules, ports made explicit,
    # 1.5s written 1500ms: none of it is a change
    assert summary["shop/dev"][1] == ("now written as Gateway API HTTPRoute (istio -> gateway-api); "
                                      "routing unchanged: same routes, same weights")
    assert summary["ratings/dev"][1].endswith("routing unchanged: same routes, same weights")
    assert summary["gw/dev"][1:3] == [
        "now written as Gateway API HTTPRoute (istio -> gateway-api); routing unchanged: same routes, same weights",
        "Gateway mesh/gw-gateway: served by the gateway Istio deploys for it (a new address) "
        "instead of the pods with istio=ingressgateway"]
    assert not any("reordered" in line or "new match" in line or "9080" in line
                   for lines in summary.values() for line in lines), proc.stdout
    assert "--- a/rendered/dev/mesh/shop/virtualservice.yaml" in proc.stdout  # the YAML diff still follows


def test_a_target_change_with_a_new_weight_says_exactly_that(repo: Path) -> None:
    edit(repo / "apps/shop.yaml", "to: {v1: 80, v2: 20}", "to: {v1: 90, v2: 10}")
    proc = run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True)
    summary = entries(proc.stdout)
    assert summary["shop/dev"][1:] == [
        "now written as Gateway API HTTPRoute (istio -> gateway-api)",
        "route `default`: v1 80 / v2 20 → v1 90 / v2 10",
        "3 Services added: shop-v1, shop-v2, shop-v3 (one per version: the routes' backends, "
        "as Gateway API routes have no subsets)"]
    assert summary["shop/prod, staging"] == ["VirtualService changed", "route `default`: v1 80 / v2 20 → v1 90 / v2 10"]


def test_a_traffic_policy_changed_with_the_target_is_said_once_for_every_version(repo: Path) -> None:
    """books' policy moves from its DestinationRule to one DestinationRule per version Service."""
    edit(repo / "apps/books.yaml", "      maxEjectionPercent: 100\n", "")
    summary = entries(run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True).stdout)
    assert summary["books/dev"][1:3] == ["now written as Gateway API HTTPRoute (istio -> gateway-api)",
                                         "outlier detection: maxEjectionPercent 100 removed"]


def test_requests_that_now_take_another_route_are_shown(repo: Path) -> None:
    """reviews is exposed under ``/reviews``: Istio's ``uri prefix`` also takes ``/reviewsx``,
    an HTTPRoute ``PathPrefix`` only whole segments; the reviewer is shown such a request."""
    summary = entries(run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True).stdout)
    assert summary["reviews/dev"][1:3] == [
        "now written as Gateway API HTTPRoute (istio -> gateway-api)",
        "requests like `GET /reviewsx` through gateway mesh/reviews-gateway now take no route (404), "
        "not (by their headers and query) route `jason` (v2 100), route `default` (v1 50 / v2 50)"]


def test_a_condition_that_changes_with_the_target_is_shown_with_a_request(repo: Path) -> None:
    edit(repo / "apps/shop.yaml", 'uri exact "/health"', 'uri exact "/healthz"')
    summary = entries(run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True).stdout)
    lines = summary["shop/dev"][1:]
    assert lines[0] == "now written as Gateway API HTTPRoute (istio -> gateway-api)"
    assert "requests like `GET /healthz` from the mesh now take route `health` (v1 100), not (by their " \
           "headers and query) route `chrome` (v1 50 / v3 50), route `default` (v1 80 / v2 20)" in lines
    assert "requests like `GET /health` from the mesh now take route `default` (v1 80 / v2 20), " \
           "not route `health` (v1 100)" in lines


def test_a_regex_condition_that_changes_with_the_target_is_shown_with_a_request(repo: Path) -> None:
    edit(repo / "apps/shop.yaml", '"^.*(Chrome).*$"', '"^.*(Firefox).*$"')
    lines = entries(run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True).stdout)["shop/dev"][1:]
    assert "requests like `GET /` with header user-agent=xChromex from the mesh now take route `default` " \
           "(v1 80 / v2 20), not route `chrome` (v1 50 / v3 50)" in lines, lines
    assert "requests like `GET /` with header user-agent=xFirefoxx from the mesh now take route `chrome` " \
           "(v1 50 / v3 50), not route `default` (v1 80 / v2 20)" in lines, lines


def test_back_from_gateway_api_to_istio_reads_the_same(repo: Path) -> None:
    sh("git", "revert", "--no-edit", "HEAD", cwd=repo)
    summary = entries(run_meshgen("diff", "--base", "HEAD~1", cwd=repo, check=True).stdout)
    assert summary["books/dev"] == [
        "VirtualService added, DestinationRules changed, HTTPRoute removed, 2 Services removed",
        "now written as Istio VirtualService (gateway-api -> istio); routing unchanged: same routes, same weights",
        "2 Services removed: books-v1, books-v2"]
    assert summary["shop/dev"][1].endswith("routing unchanged: same routes, same weights")


def test_a_port_made_explicit_equal_to_the_services_port_is_no_change(repo: Path) -> None:
    """An Istio destination without a port goes to the Service's port (Istio picks it when
    the Service has one); the HTTPRoute's ``backendRefs`` must name it."""
    base = render.render_repo(repo).files
    sh("git", "checkout", "--quiet", "HEAD~1", cwd=repo)
    istio = dict(render.render_repo(repo).files)
    path = "rendered/dev/mesh/shop/virtualservice.yaml"
    vs = yaml.safe_load(istio[path])
    for route in vs["spec"]["http"]:
        for d in route["route"]:
            d["destination"].pop("port")
    istio[path] = yaml.safe_dump(vs).encode()
    change, = [c for c in diff.compare(istio, base).changes if c.title == "shop/dev"]
    assert change.traffic[0].endswith("routing unchanged: same routes, same weights")


def _as_target_change(before: dict[str, bytes], after: dict[str, bytes]) -> tuple[dict, dict]:
    """The istio environment ``mesh`` of ``before`` and the gateway-api one ``gw`` of ``after``,
    as if ``gw`` had moved from the one target to the other."""
    base = {p.replace("rendered/mesh/", "rendered/gw/"): b for p, b in before.items() if p.startswith("rendered/mesh/")}
    return base, {p: b for p, b in after.items() if p.startswith("rendered/gw/")}


def test_rewrites_mirrors_headers_other_hosts_tcp_and_tls_routes_carried_alike_are_no_change(tmp_path: Path) -> None:
    from tests.test_gatewayapi_carried import DB, PAYMENTS, RATINGS, REVIEWS, _repo

    rendering = render.render_repo(_repo(tmp_path, {"ratings": RATINGS, "reviews": REVIEWS, "payments": PAYMENTS,
                                                    "db": DB}), cache=False)
    when = {("gw", app): w for (env, app), w in diff.conditions(rendering).items() if env == "mesh"}
    base, head = _as_target_change(rendering.files, rendering.files)
    changes = {c.app: c for c in diff.compare(base, head, base_when=when, head_when=when).changes}
    assert changes["ratings"].traffic == (
        "now written as Gateway API HTTPRoute (istio -> gateway-api); routing unchanged: same routes, same weights",
        "2 Services added: ratings-v1, ratings-v2 (one per version: the routes' backends, "
        "as Gateway API routes have no subsets)",
        "ReferenceGrant added: ratings-from-shop (opening a namespace to the routes)")
    # two TCPRoutes, one per port: their order means nothing
    assert changes["db"].traffic[0] == ("now written as Gateway API TCPRoute (istio -> gateway-api); "
                                        "routing unchanged: same routes, same weights")
    assert changes["payments"].traffic[0] == ("now written as Gateway API TLSRoute (istio -> gateway-api); "
                                              "routing unchanged: same routes, same weights")
    assert changes["reviews"].traffic[0].endswith("routing unchanged: same routes, same weights")


def test_a_tcp_weight_changed_with_the_target_is_shown(tmp_path: Path) -> None:
    from tests.test_gatewayapi_carried import DB, _repo

    before = render.render_repo(_repo(tmp_path / "before", {"db": DB}), cache=False).files
    changed = DB.replace("to: {v1: 80, v2: 20}", "to: {v1: 70, v2: 30}")
    after = render.render_repo(_repo(tmp_path / "after", {"db": changed}), cache=False).files
    change, = diff.compare(*_as_target_change(before, after)).changes
    assert change.traffic[:2] == ("now written as Gateway API TCPRoute (istio -> gateway-api)",
                                  "tcp route 1: v1 80 / v2 20 → v1 70 / v2 30")
