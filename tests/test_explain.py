"""``meshgen explain`` on the bundled example and on a copy with conditional routes: it reads
the rendered VirtualService, not the spec, and answers as Istio would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_meshgen
from tests.example import copy_example

CONDITIONAL_ROUTES = '''  routes:
    - name: chrome-beta
      when: header "User-Agent" regex "^.*(Chrome).*$" or header "User-Agent" regex "^.*(Nexus 6P).*$"
      to: {v1: 50, v2: 50}
    - name: api-reads
      when: uri prefix "/api" and not (header "x-user" regex "internal-.*" or method exact "POST")
      to: v2
    - name: default
'''


@pytest.fixture(scope="module")
def conditional_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with the DESIGN's Lamia route and a negated method in apps/ratings.yaml."""
    repo = copy_example(tmp_path_factory.mktemp("repo"))
    spec = repo / "apps" / "ratings.yaml"
    text = spec.read_text()
    assert "  routes:\n    - name: default\n" in text
    spec.write_text(text.replace("  routes:\n    - name: default\n", CONDITIONAL_ROUTES))
    run_meshgen("render", cwd=repo, check=True)
    return repo


def explain_json(repo: Path, *args: str, full: bool = False) -> dict:
    """The JSON answer; only DESIGN's ``route`` and ``destinations`` unless ``full``."""
    proc = run_meshgen("explain", *args, "--output", "json", cwd=repo, check=True)
    out = json.loads(proc.stdout)
    return out if full else {k: out[k] for k in ("route", "destinations")}


def test_explain_reads_the_bundled_examples_rendered_routes() -> None:
    assert explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/reviews/1") == \
        {"route": "default", "destinations": {"v1": 50, "v2": 50}}
    assert explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/reviews/1",
                        "--gateway", "mesh/reviews-gateway") == \
        {"route": "default", "destinations": {"v1": 50, "v2": 50}}


def test_requests_outside_an_exposed_path_match_nothing() -> None:
    assert explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/admin",
                        "--gateway", "mesh/reviews-gateway") == {"route": None, "destinations": {}}
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--uri", "/admin", "--gateway",
                       "mesh/reviews-gateway", cwd=ROOT, check=True)
    assert "no route matches: Envoy answers 404" in proc.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["--header", "User-Agent=Mozilla Chrome/120"], {"route": "chrome-beta", "destinations": {"v1": 50, "v2": 50}}),
    (["--header", "user-agent=Nexus 6P"], {"route": "chrome-beta", "destinations": {"v1": 50, "v2": 50}}),
    (["--uri", "/api/ratings?page=2"], {"route": "api-reads", "destinations": {"v2": 100}}),
    (["--uri", "/api/ratings", "--method", "POST"], {"route": "default", "destinations": {"v1": 50, "v2": 50}}),
    (["--uri", "/api/ratings", "--header", "x-user=internal-ci"],
     {"route": "default", "destinations": {"v1": 50, "v2": 50}}),
    ([], {"route": "default", "destinations": {"v1": 50, "v2": 50}}),
])
def test_explain_json_names_the_spec_route_and_its_weights(conditional_repo: Path, args: list[str],
                                                           expected: dict) -> None:
    assert explain_json(conditional_repo, "ratings", "--env", "dev", *args) == expected


def test_explain_text_shows_the_spec_route_and_the_istio_guard_route(conditional_repo: Path) -> None:
    proc = run_meshgen("explain", "ratings", "--env", "dev", "--uri", "/api/x", "--method", "POST",
                       cwd=conditional_repo, check=True)
    assert "rendered/dev/mesh/ratings/virtualservice.yaml" in proc.stdout
    assert "POST http://ratings:80/api/x" in proc.stdout
    assert "spec route:  default" in proc.stdout
    assert "Istio route: #1 api-reads-guard-1-default (a guard route of the compiled list)" in proc.stdout
    assert "v1      │ 50%" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--env", "prod"], "error: app 'nope' has no rendered VirtualService in environment 'prod'"),
    (["ratings", "--env", "nope"], "error: environment 'nope' has no rendered output under rendered/"),
])
def test_unknown_app_or_environment_exits_1(args: list[str], message: str) -> None:
    proc = run_meshgen("explain", *args, cwd=ROOT)
    assert proc.returncode == 1
    assert message in proc.stderr


def test_malformed_header_option_is_a_usage_error() -> None:
    proc = run_meshgen("explain", "ratings", "--env", "prod", "--header", "no-equals-sign", cwd=ROOT)
    assert proc.returncode == 2
    assert "'no-equals-sign' is not KEY=VALUE" in proc.stderr


def test_unknown_environment_hint_lists_environments_only(tmp_path: Path) -> None:
    """``rendered/_gitops/`` (Argo CD and Flux manifests) is not offered as an environment."""
    repo = copy_example(tmp_path)
    (repo / "meshgen.yaml").write_text("gitops: {repoURL: https://github.com/acme/mesh-config.git, argocd: true}\n")
    run_meshgen("render", cwd=repo, check=True)
    assert (repo / "rendered" / "_gitops").is_dir()
    proc = run_meshgen("explain", "ratings", "--env", "nope", cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr == ("error: environment 'nope' has no rendered output under rendered/ "
                           "(hint: known: dev, prod, staging)\n")


# --------------------------------------------------------------------------- gateways, authority


def test_an_unknown_gateway_is_a_usage_error_listing_the_bound_gateways() -> None:
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--gateway", "istio-system/public", cwd=ROOT)
    assert proc.returncode == 2
    assert ("error: gateway 'istio-system/public' is not bound by rendered/prod/mesh/reviews/virtualservice.yaml; "
            "it binds: mesh, mesh/reviews-gateway") in proc.stderr
    proc = run_meshgen("explain", "ratings", "--env", "prod", "--gateway", "mesh/reviews-gateway", cwd=ROOT)
    assert proc.returncode == 2 and "it binds: mesh\n" in proc.stderr


def test_a_gateway_may_be_named_in_the_virtual_services_namespace() -> None:
    assert explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/reviews/1", "--gateway", "reviews-gateway",
                        "--header", "end-user=jason") == {"route": "jason", "destinations": {"v2": 100}}


def test_an_authority_the_virtual_service_does_not_serve_says_so() -> None:
    out = explain_json(ROOT, "reviews", "--env", "prod", "--authority", "shop.example.com", full=True)
    assert out == {"route": None, "destinations": {}, "outcome": "not-served"}
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--authority", "shop.example.com", cwd=ROOT, check=True)
    assert ("authority 'shop.example.com' is not served by this VirtualService (hosts: "
            "reviews.mesh.svc.cluster.local, bookinfo.example.com)") in proc.stdout
    for served in ("reviews", "reviews.mesh", "reviews.mesh.svc.cluster.local", "reviews:9080", "bookinfo.example.com",
                   "reviews:8080"):  # Istio's proxies match the host without its port
        assert explain_json(ROOT, "reviews", "--env", "prod", "--authority", served, full=True)["outcome"] == "route"


@pytest.mark.parametrize(("authority", "namespace", "outcome"), [
    ("reviews", "mesh", "route"), ("reviews", "other", "not-served"), ("reviews:9080", "other", "not-served"),
    ("reviews.mesh", "other", "route"), ("reviews.mesh.svc", "other", "route"),
    ("reviews.mesh.svc.cluster.local", "other", "route"), ("reviews.mesh.svc.cluster.local.", "other", "route"),
    ("bookinfo.example.com", "other", "route"), ("reviews.other", "other", "not-served"),
])
def test_a_services_bare_name_is_served_only_in_its_own_namespace(authority: str, namespace: str, outcome: str) -> None:
    """istiod gives a sidecar ``reviews`` only in the Service's namespace (httproute.go
    ``generateAltVirtualHostsForKubernetesService``); tests/test_envoy.py checks it on Envoy."""
    out = explain_json(ROOT, "reviews", "--env", "prod", "--authority", authority, "--source-namespace", namespace,
                       full=True)
    assert out["outcome"] == outcome
    assert (out["route"] == "default") == (outcome == "route")


def test_the_default_authority_is_the_name_the_callers_namespace_resolves() -> None:
    proc = run_meshgen("explain", "reviews", "--env", "prod", cwd=ROOT, check=True)
    assert "GET http://reviews:9080/" in proc.stdout and "namespace mesh" in proc.stdout
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--source-namespace", "other", cwd=ROOT, check=True)
    assert "GET http://reviews.mesh:9080/" in proc.stdout and "spec route:  default" in proc.stdout
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--authority", "reviews", "--source-namespace", "other",
                       cwd=ROOT, check=True)
    assert ("a sidecar in namespace other serves it as reviews.mesh.svc.cluster.local, "
            "reviews.mesh.svc.cluster.local., reviews.mesh, reviews.mesh.svc, bookinfo.example.com; the sidecar's "
            "catch-all virtual host passes the request through") in proc.stdout


def test_a_gateway_serves_only_the_hosts_it_shares_with_the_virtual_service() -> None:
    """gateway.go ``buildGatewayHTTPRouteConfig``: the server's hosts intersected with the
    VirtualService's; no short names."""
    for authority in ("reviews", "reviews.mesh", "reviews.mesh.svc.cluster.local"):
        out = explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/reviews/1", "--authority", authority,
                           "--gateway", "reviews-gateway", full=True)
        assert out == {"route": None, "destinations": {}, "outcome": "not-served"}, authority
    assert explain_json(ROOT, "reviews", "--env", "prod", "--uri", "/reviews/1", "--authority", "bookinfo.example.com:80",
                        "--gateway", "reviews-gateway") == {"route": "default", "destinations": {"v1": 50, "v2": 50}}
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--uri", "/reviews/1", "--authority", "reviews",
                       "--gateway", "reviews-gateway", cwd=ROOT, check=True)
    assert "gateway mesh/reviews-gateway on port 80 serves it as bookinfo.example.com; the gateway answers 404" \
        in proc.stdout


def test_a_request_through_a_gateway_is_shown_on_the_gateways_server_port(tmp_path: Path) -> None:
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--uri", "/reviews/1", "--gateway",
                       "mesh/reviews-gateway", cwd=ROOT, check=True)
    assert "GET http://bookinfo.example.com:80/reviews/1" in proc.stdout
    assert "from gateway mesh/reviews-gateway, port 80" in proc.stdout
    repo = copy_example(tmp_path)
    spec = repo / "apps" / "reviews.yaml"
    spec.write_text(spec.read_text().replace('    paths: ["/reviews"]\n',
                                             '    paths: ["/reviews"]\n    tls: {credentialName: bookinfo-cert}\n'))
    run_meshgen("render", cwd=repo, check=True)
    proc = run_meshgen("explain", "reviews", "--env", "prod", "--uri", "/reviews/1", "--gateway",
                       "mesh/reviews-gateway", cwd=repo, check=True)
    assert "GET https://bookinfo.example.com:443/reviews/1" in proc.stdout
    assert "from gateway mesh/reviews-gateway, port 443" in proc.stdout
    proc = run_meshgen("explain", "reviews", "--env", "prod", cwd=repo, check=True)
    assert "GET http://reviews:9080/" in proc.stdout  # from the mesh: the service port


ROUTE_FIELDS = '''  routes:
    - name: default
      to: {v1: 90, v2: 10}
      timeout: 3s
      retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx"}
      fault: {delay: {fixedDelay: 2s, percentage: {value: 5}}}
      mirror: {version: v2, percent: 25}
'''


def test_the_answer_shows_the_routes_timeout_retries_fault_and_mirror(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    spec = repo / "apps" / "ratings.yaml"
    text = spec.read_text()
    start = text.index("  routes:\n")
    spec.write_text(text[:start] + ROUTE_FIELDS)
    run_meshgen("render", cwd=repo, check=True)
    out = explain_json(repo, "ratings", "--env", "dev", full=True)
    assert out == {"route": "default", "destinations": {"v1": 90, "v2": 10}, "outcome": "route",
                   "timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"},
                   "fault": {"delay": {"fixedDelay": "2s", "percentage": {"value": 5}}},
                   "mirror": {"version": "v2", "percent": 25.0}}
    proc = run_meshgen("explain", "ratings", "--env", "dev", cwd=repo, check=True)
    for line in ("timeout: 3s", 'retries: {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"}',
                 'fault: {"delay": {"fixedDelay": "2s", "percentage": {"value": 5}}}',
                 "mirror: v2, 25% of requests"):
        assert line in proc.stdout


# --------------------------------------------------------------------------- as Envoy matches


def test_a_repeated_query_parameter_is_matched_by_its_first_value(conditional_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "beta"
    shutil.copytree(conditional_repo, repo)
    spec = repo / "apps" / "ratings.yaml"
    spec.write_text(spec.read_text().replace('    - name: chrome-beta\n',
                                             '    - name: beta\n      when: query "beta" exact "true"\n'
                                             '      to: v2\n    - name: chrome-beta\n'))
    run_meshgen("render", cwd=repo, check=True)
    assert explain_json(repo, "ratings", "--env", "dev", "--uri", "/publicx?beta=zz&beta=true")["route"] == "default"
    assert explain_json(repo, "ratings", "--env", "dev", "--uri", "/publicx?beta=true&beta=zz")["route"] == "beta"
    assert explain_json(repo, "ratings", "--env", "dev", "--uri", "/publicx?beta=zz",
                        "--query", "beta=true")["route"] == "default"


def test_the_path_is_matched_after_envoys_normalisation(conditional_repo: Path) -> None:
    assert explain_json(conditional_repo, "ratings", "--env", "dev", "--uri", "/x/../api/1")["route"] == "api-reads"
    assert explain_json(conditional_repo, "ratings", "--env", "dev", "--uri", "/%61pi/1")["route"] == "api-reads"
    assert explain_json(conditional_repo, "ratings", "--env", "dev", "--uri", "/api/../x")["route"] == "default"
    proc = run_meshgen("explain", "ratings", "--env", "dev", "--uri", "/x/../api/1", cwd=conditional_repo, check=True)
    assert "GET http://ratings:80/api/1" in proc.stdout
    assert "sent as /x/../api/1 (Envoy normalises the path)" in proc.stdout


# --------------------------------------------------------------------------- no route left for a proxy


def test_a_route_list_without_a_route_for_this_port_answers_404_as_the_spec_says(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    spec = repo / "apps" / "ratings.yaml"
    text = spec.read_text()
    spec.write_text(text[:text.index("  routes:\n")] + "  routes:\n    - name: alt-port\n"
                    "      when: port 8080\n      to: v2\n")
    run_meshgen("render", cwd=repo, check=True)
    assert "name: no-route" in (repo / "rendered/dev/mesh/ratings/virtualservice.yaml").read_text()
    assert explain_json(repo, "ratings", "--env", "dev", "--port", "8080") == {"route": "alt-port",
                                                                           "destinations": {"v2": 100}}
    out = explain_json(repo, "ratings", "--env", "dev", full=True)
    assert out == {"route": None, "destinations": {}, "outcome": "route", "directResponse": {"status": 404}}
    proc = run_meshgen("explain", "ratings", "--env", "dev", cwd=repo, check=True)
    assert "no spec route matches: Istio route #1 no-route answers 404" in proc.stdout


def test_a_virtual_service_istiod_leaves_out_sends_the_request_to_every_version(tmp_path: Path) -> None:
    """A VirtualService written without the explicit 404 (by hand, or by an older meshgen)."""
    repo = copy_example(tmp_path)
    vs = repo / "rendered/dev/mesh/ratings/virtualservice.yaml"
    text = vs.read_text()
    vs.write_text(text.replace("  - name: default\n", "  - name: alt-port\n    match:\n    - port: 8080\n"))
    out = explain_json(repo, "ratings", "--env", "dev", full=True)
    assert out == {"route": None, "destinations": {}, "outcome": "omitted", "versions": ["v1", "v2"]}
    proc = run_meshgen("explain", "ratings", "--env", "dev", cwd=repo, check=True)
    assert ("istiod leaves it out, and the Service's default route sends the request to every version "
            "(v1, v2)") in proc.stdout


# --------------------------------------------------------------------------- many requests


def test_many_requests_as_json_lines_from_a_file_or_stdin(tmp_path: Path) -> None:
    lines = ('{"uri": "/reviews/1", "headers": {"end-user": "jason"}}\n'
             '\n# a comment\n'
             '{"uri": "/reviews/1", "gateway": "mesh/reviews-gateway"}\n'
             '{"uri": "/admin", "gateway": "mesh/reviews-gateway"}\n')
    (tmp_path / "requests.jsonl").write_text(lines)
    proc = run_meshgen("-C", str(ROOT), "explain", "reviews", "--env", "prod", "--requests",
                       str(tmp_path / "requests.jsonl"), "--output", "json", cwd=tmp_path, check=True)
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(a["route"], a["outcome"]) for a in answers] == [("jason", "route"), ("default", "route"),
                                                              (None, "no-match")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    piped = subprocess.run([sys.executable, "-m", "generator", "explain", "reviews", "--env", "prod",
                            "--requests", "-", "--output", "json"], input=lines, cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
    assert piped.stdout == proc.stdout


def test_bad_json_lines_are_errors_with_their_place(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('{"uri": "/a"}\n{"uri": \n  {"url": "/b"}\n{"port": "80"}\n')
    proc = run_meshgen("-C", str(ROOT), "explain", "reviews", "--env", "prod", "--requests", "r.jsonl", cwd=tmp_path)
    assert proc.returncode == 1
    assert "r.jsonl:2:" in proc.stderr and "error: not JSON" in proc.stderr
    assert "r.jsonl:3:3: error: unknown request field 'url'" in proc.stderr
    assert "r.jsonl:4:1: error: request field 'port' must be a port number, not \"80\"" in proc.stderr


def test_a_hand_edited_uri_regex_rewrite_that_is_not_re2_is_an_outside_error(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    vs = repo / "rendered/dev/mesh/ratings/virtualservice.yaml"
    text = vs.read_text()
    assert "    retries:\n" in text
    vs.write_text(text.replace("    retries:\n", "    rewrite:\n      uriRegexRewrite: {match: '(', rewrite: x}\n"
                                                 "    retries:\n", 1))
    proc = run_meshgen("explain", "ratings", "--env", "dev", cwd=repo)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert ("rendered/dev/mesh/ratings/virtualservice.yaml: cannot evaluate this VirtualService: "
            "rewrite.uriRegexRewrite.match '(' is not RE2") in proc.stderr
