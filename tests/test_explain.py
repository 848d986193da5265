"""``meshgen explain`` on the bundled example and on a copy with conditional routes: it reads
the rendered VirtualService, not the spec, and answers as Istio would."""

from __future__ import annotations

import json
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


def explain_json(repo: Path, *args: str) -> dict:
    proc = run_meshgen("explain", *args, "--output", "json", cwd=repo, check=True)
    return json.loads(proc.stdout)


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
