"""``meshgen diff``, ``publish``, ``validate`` (analysis) and ``render`` (Argo CD / Flux) on real repositories.

Each test builds a git repository from the bundled example, commits a base, changes it, and
runs the command line as a user would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from tests.conftest import run_meshgen
from tests.example import copy_example


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def config_repo(tmp_path: Path) -> Path:
    """The bundled example as a git repository with one commit on ``main``."""
    repo = copy_example(tmp_path / "config")
    sh("git", "init", "--quiet", "--initial-branch=main", cwd=repo)
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "--quiet", "-m", "Example", cwd=repo)
    return repo


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


# ----------------------------------------------------------------------------------- diff


def test_diff_of_uncommitted_weight_change(config_repo: Path) -> None:
    edit(config_repo / "apps" / "ratings.yaml", "to: {v1: 50, v2: 50}", "to: {v1: 90, v2: 10}")
    proc = run_meshgen("diff", cwd=config_repo, check=True)
    head = git.Repo(config_repo).head.commit.hexsha[:7]
    lines = proc.stdout.splitlines()
    assert lines[0] == f"meshgen diff {head} → working tree: ratings changed in dev, prod, staging; 3 files"
    assert lines[2:4] == ["ratings/dev, prod, staging: VirtualService changed",
                          "  route `default`: v1 50 / v2 50 → v1 90 / v2 10"]
    assert "--- a/rendered/prod/mesh/ratings/virtualservice.yaml" in proc.stdout
    assert "+      weight: 90" in proc.stdout
    assert len(git.Repo(config_repo).git.worktree("list").splitlines()) == 1  # temporary worktree removed


def test_diff_on_a_branch_defaults_to_where_it_left_main(config_repo: Path) -> None:
    repo = git.Repo(config_repo)
    repo.git.checkout("-b", "canary-reviews")
    edit(config_repo / "apps" / "reviews.yaml", "timeout: 10s", "timeout: 10s\n      retries: {attempts: 2}")
    repo.git.commit("-am", "Retry reviews")
    edit(config_repo / "apps" / "books.yaml", "      maxEjectionPercent: 100\n", "")
    edit(config_repo / "apps" / "books.yaml", "    outlierDetection:\n      consecutive5xxErrors: 1\n"
         "      interval: 1s\n      baseEjectionTime: 3m\n", "")
    proc = run_meshgen("diff", "--format", "markdown", cwd=config_repo, check=True)
    base = repo.commit("main").hexsha[:7]
    assert proc.stdout.startswith(f"<!-- meshgen-diff -->\n### meshgen diff `{base}` → `working tree`\n")
    assert ("**books/dev, prod, staging** — DestinationRule changed\n- outlier detection removed\n\n"
            "**reviews/dev, prod, staging** — VirtualService changed\n"
            "- route `default`: retries added (attempts 2)\n") in proc.stdout
    assert "<details><summary>YAML diff (6 files)</summary>" in proc.stdout


def test_diff_summary_speaks_the_spec_words(config_repo: Path) -> None:
    """Conditions are quoted as the spec writes them, not as compiled Istio matches; the guard
    routes a negation compiles to are not announced as routes of their own; a Gateway's hosts
    are named once although its HTTP and HTTPS servers both carry them."""
    reviews = config_repo / "apps" / "reviews.yaml"
    edit(reviews, 'when: header "end-user" exact "jason"', 'when: header "end-user" exact "json"')
    edit(reviews, "    - name: default\n",
         '    - name: mobile\n      when: header "user-agent" regex ".*Mobile.*" and not uri prefix "/api"\n'
         "      to: v3\n    - name: default\n")
    edit(config_repo / "environments" / "prod.yaml", "reviews: {spec: {expose: {hosts: [bookinfo.example.com]}}}",
         "reviews: {spec: {expose: {hosts: [bookinfo.example.com, shop.example.com], "
         "tls: {credentialName: shop-cert}}}}")
    proc = run_meshgen("diff", cwd=config_repo, check=True)
    summary = proc.stdout.split("\n--- ")[0].rstrip("\n")
    mobile = '  new route `mobile` when `header "user-agent" regex ".*Mobile.*" and not uri prefix "/api"` → v3 100'
    jason = '  route `jason`: condition `header "end-user" exact "jason"` → `header "end-user" exact "json"`'
    assert summary.split("\n\n")[1:3] == [
        "\n".join(["reviews/dev, staging: VirtualService changed", mobile, jason]),
        "\n".join(["reviews/prod: VirtualService changed, Gateway changed", "  host shop.example.com added",
                   mobile, jason, "  host shop.example.com added", "  port 443 added"])]
    assert "guard" not in summary
    run_meshgen("render", cwd=config_repo, check=True)
    rendered = (config_repo / "rendered/dev/mesh/reviews/virtualservice.yaml").read_text()
    assert "name: mobile-guard-1-" in rendered  # the guard exists in the output, unannounced


def test_diff_with_nothing_changed(config_repo: Path) -> None:
    proc = run_meshgen("diff", "--base", "main", cwd=config_repo, check=True)
    assert proc.stdout.startswith("meshgen diff main@")
    assert proc.stdout.rstrip().endswith("no change to the rendered output")


def test_diff_against_a_base_that_does_not_render(config_repo: Path) -> None:
    edit(config_repo / "apps" / "ratings.yaml", "to: {v1: 50, v2: 50}", "to: {v1: 50, v2: 40}")
    sh("git", "commit", "--quiet", "-am", "Broken weights", cwd=config_repo)
    edit(config_repo / "apps" / "ratings.yaml", "to: {v1: 50, v2: 40}", "to: {v1: 40, v2: 60}")
    proc = run_meshgen("diff", "--base", "HEAD", cwd=config_repo, check=True)
    assert "note: the base does not render (1 spec error); compared with its committed rendered/ files" in proc.stdout
    assert "  route `default`: v1 50 / v2 50 → v1 40 / v2 60" in proc.stdout


def test_diff_with_an_unknown_base_is_a_usage_error(config_repo: Path) -> None:
    proc = run_meshgen("diff", "--base", "no-such-branch", cwd=config_repo)
    assert proc.returncode == 2
    assert proc.stderr == "error: --base no-such-branch: no such commit\n"


def test_diff_outside_a_git_repository_is_a_usage_error(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "plain")
    proc = run_meshgen("diff", cwd=repo)
    assert proc.returncode == 2
    assert "is not a git repository; meshgen diff compares git revisions" in proc.stderr


# ----------------------------------------------------------------------------------- publish


@pytest.fixture
def deploy_repo(tmp_path: Path) -> Path:
    bare = tmp_path / "deploy.git"
    sh("git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    sh("git", "config", "receive.denyNonFastForwards", "true", cwd=bare)
    return bare


def test_publish_one_environment_then_nothing_to_publish(config_repo: Path, deploy_repo: Path) -> None:
    proc = run_meshgen("publish", "--to", str(deploy_repo), "--branch", "main", "--env", "prod",
                       cwd=config_repo, check=True)
    assert proc.stdout.startswith(f"published 11 files to {deploy_repo} main as ")
    head = git.Repo(deploy_repo).commit("main")
    source = git.Repo(config_repo).head.commit.hexsha
    assert head.summary == f"Publish rendered/prod from config@{source[:7]}"
    assert f"Source-Commit: {source}" in head.message
    paths = sorted(b.path for b in head.tree.traverse() if b.type == "blob")
    assert paths[0] == "rendered/prod/kustomization.yaml" and len(paths) == 11
    again = run_meshgen("publish", "--to", str(deploy_repo), "--branch", "main", "--env", "prod",
                        cwd=config_repo, check=True)
    assert again.stdout == f"nothing to publish: {deploy_repo} main already holds this output\n"
    assert git.Repo(deploy_repo).commit("main") == head


def test_publish_environments_into_an_environment_branch_root(config_repo: Path, deploy_repo: Path) -> None:
    for env in ("dev", "prod"):
        run_meshgen("publish", "--to", str(deploy_repo), "--branch", "rendered", "--env", env, "--path", ".",
                    cwd=config_repo, check=True)
    tree = git.Repo(deploy_repo).commit("rendered").tree
    assert sorted(t.name for t in tree.trees) == ["dev", "prod"]


@pytest.mark.parametrize("path", ["", ".", "./", "/"])
def test_publish_to_an_empty_path_or_the_root_is_a_usage_error(config_repo: Path, deploy_repo: Path,
                                                              path: str) -> None:
    """Publishing every environment there would commit a tree that replaces the whole branch."""
    run_meshgen("publish", "--to", str(deploy_repo), "--branch", "main", "--env", "prod", cwd=config_repo, check=True)
    before = git.Repo(deploy_repo).commit("main").hexsha
    proc = run_meshgen("publish", "--to", str(deploy_repo), "--branch", "main", "--path", path, cwd=config_repo)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --path ") and ("empty" in proc.stderr or "root" in proc.stderr
                                                         or "relative" in proc.stderr)
    assert len(proc.stderr.splitlines()) == 1
    assert git.Repo(deploy_repo).commit("main").hexsha == before


def test_publish_to_an_unreachable_remote_exits_3(config_repo: Path, tmp_path: Path) -> None:
    proc = run_meshgen("publish", "--to", str(tmp_path / "missing.git"), "--branch", "main", cwd=config_repo)
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"error: cannot reach {tmp_path / 'missing.git'}: fatal: ")
    assert len(proc.stderr.splitlines()) == 1


# ----------------------------------------------------------------------------------- validate


def test_validate_reports_analysis_errors_at_their_spec_place(config_repo: Path) -> None:
    """A repository's own DestinationRule template that drops a subset: routes to it go nowhere."""
    builtin = (Path(__file__).parent.parent / "templates" / "destinationrule.yaml.j2").read_text()
    own = builtin.replace("{%- for subset in subsets %}", "{%- for subset in subsets if subset.name != 'v2' %}")
    assert own != builtin
    (config_repo / "templates").mkdir()
    (config_repo / "templates" / "destinationrule.yaml.j2").write_text(own)
    proc = run_meshgen("validate", cwd=config_repo)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    ratings = [line for line in lines if line.startswith("apps/ratings.yaml")]
    assert ratings[0] == (
        "apps/ratings.yaml:17:24: error: dev: VirtualService ratings.mesh routes to subset 'v2' of host "
        "ratings.mesh.svc.cluster.local, but no DestinationRule for that host defines it "
        "(hint: add the version to the app's versions, or route to an existing one) [MG101]")
    assert lines[-1] == f"{len(lines) - 1} errors"


def test_check_fails_on_analysis_errors_too(config_repo: Path) -> None:
    """The pre-commit hook runs `check`: a cross-object error must stop it, even with rendered/ fresh."""
    builtin = (Path(__file__).parent.parent / "templates" / "destinationrule.yaml.j2").read_text()
    (config_repo / "templates").mkdir()
    (config_repo / "templates" / "destinationrule.yaml.j2").write_text(
        builtin.replace("{%- for subset in subsets %}", "{%- for subset in subsets if subset.name != 'v2' %}"))
    run_meshgen("render", cwd=config_repo, check=True)
    proc = run_meshgen("check", cwd=config_repo)
    assert proc.returncode == 1
    assert any(line.startswith("apps/ratings.yaml:17:24: error: dev: VirtualService ratings.mesh routes to subset 'v2'")
               and line.endswith("[MG101]") for line in proc.stderr.splitlines())


def test_validate_prints_warnings_and_passes(config_repo: Path) -> None:
    edit(config_repo / "apps" / "ratings.yaml", "tls: {mode: ISTIO_MUTUAL}", "tls: {mode: DISABLE}")
    proc = run_meshgen("validate", cwd=config_repo)
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 3  # one per environment
    assert warnings[0].startswith("apps/ratings.yaml:14:17: warning: dev: DestinationRule ratings.mesh uses "
                                  "tls mode DISABLE in namespace mesh, where books.mesh, gw.mesh, reviews.mesh "
                                  "use ISTIO_MUTUAL")
    assert warnings[0].endswith("[MG108]")


# ----------------------------------------------------------------------------------- render: Argo CD / Flux


GITOPS = """\
gitops:
  repoURL: https://github.com/acme/mesh-config.git
  argocd: true
  flux: {interval: 5m}
"""


def test_render_writes_gitops_manifests_that_check_keeps_fresh(config_repo: Path) -> None:
    (config_repo / "meshgen.yaml").write_text(GITOPS)
    proc = run_meshgen("render", cwd=config_repo, check=True)
    gitops = config_repo / "rendered" / "_gitops"
    assert sorted(p.relative_to(gitops).as_posix() for p in gitops.rglob("*.yaml"))[:3] == [
        "argocd/applications/dev.yaml", "argocd/applications/kustomization.yaml",
        "argocd/applications/prod.yaml"]
    assert "15 written" in proc.stdout  # 6 Argo CD files + 9 Flux files; the environments are unchanged
    assert run_meshgen("check", cwd=config_repo).returncode == 0
    edit(config_repo / "meshgen.yaml", "flux: {interval: 5m}", "flux: {interval: 10m}")
    stale = run_meshgen("check", cwd=config_repo)
    assert stale.returncode == 1
    assert "rendered/_gitops/flux/prod/gitrepository.yaml: error: stale" in stale.stderr
    (config_repo / "meshgen.yaml").unlink()
    cleaned = run_meshgen("render", cwd=config_repo, check=True)
    assert "15 deleted" in cleaned.stdout
    assert not list(gitops.rglob("*.yaml"))


def test_gitops_settings_are_schema_checked(config_repo: Path) -> None:
    (config_repo / "meshgen.yaml").write_text(GITOPS.replace("argocd: true", "argocd: yes-please"))
    proc = run_meshgen("render", cwd=config_repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith("meshgen.yaml:3:11: error:")
