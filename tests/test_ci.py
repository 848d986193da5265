"""CI and pre-commit: the hook run for real with ``pre-commit try-repo``, the example workflow's
commands run against a real repository with a real ``origin``.

``pre-commit try-repo`` installs meshgen from this checkout into the hook's own virtualenv, then
runs the hook as a user's ``pre-commit run`` would. A user's pre-commit installs meshgen's
dependencies from PyPI; here, to run offline, pip uses no index and the hook imports the
dependencies from this test environment (see :func:`try_repo`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pre_commit import clientlib
from ruamel.yaml import YAML

from tests.conftest import ROOT
from tests.example import copy_example

WORKFLOW = ROOT / "examples" / "ci" / "meshgen.yaml"

NOT_RUN_HERE = {
    'pip install "$MESHGEN"': "installs the released meshgen from PyPI; here the checkout's code runs",
    'gh pr comment "$PR" --body-file meshgen-diff.md --edit-last || gh pr comment "$PR" --body-file meshgen-diff.md':
        "talks to the GitHub API",
}
"""``run:`` commands of the workflow that cannot run here, and why; every other one runs."""

GITHUB_CONTEXT = {"github.base_ref": "main", "github.event.pull_request.number": "1",
                  "github.token": "unused", "secrets.SLACK_WEBHOOK_URL": ""}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def example_repo(where: Path) -> Path:
    repo = copy_example(where)
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "Example", cwd=repo)
    return repo


# ----------------------------------------------------------------------------------- pre-commit


def test_hook_manifest_is_valid_for_pre_commit() -> None:
    [hook] = clientlib.load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert (hook["id"], hook["entry"], hook["language"], hook["pass_filenames"]) == \
        ("meshgen-check", "meshgen check", "python", False)


@pytest.mark.parametrize("path,runs", [
    ("apps/ratings.yaml", True), ("environments/prod.yaml", True), ("meshgen.yaml", True),
    ("templates/gateway.yaml.j2", True), ("status/prod/books.yaml", True),
    ("rendered/prod/kustomization.yaml", True), ("README.md", False), ("docs/apps/x.md", False),
])
def test_hook_runs_only_for_commits_touching_meshgen_inputs(path: str, runs: bool) -> None:
    """pre-commit runs a hook when its ``files`` pattern searches a staged path (``re.search``)."""
    [hook] = clientlib.load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert bool(re.search(hook["files"], path)) is runs


def try_repo(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo`` offline: pip installs meshgen into the hook's virtualenv without an
    index (no dependencies, no build isolation), and the hook finds the dependencies, setuptools
    included, in this test environment's site-packages (``PYTHONPATH``)."""
    site_packages = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never",
           "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1",
           "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted spelling: 0 turns build isolation off
           "PYTHONPATH": os.pathsep.join(site_packages)}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "meshgen-check", *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_hook_passes_when_fresh_and_fails_when_stale(tmp_path: Path) -> None:
    """Each ``try-repo`` installs meshgen afresh into the hook's virtualenv (about 10 s)."""
    repo = example_repo(tmp_path / "config")
    home = tmp_path / "pre-commit-home"
    ok = try_repo(repo, home, "--all-files")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^meshgen check\.+Passed$", ok.stdout, re.M)

    ratings = repo / "apps" / "ratings.yaml"
    ratings.write_text(ratings.read_text().replace("to: {v1: 50, v2: 50}", "to: {v1: 60, v2: 40}"))
    stale = try_repo(repo, home, "--all-files")
    assert stale.returncode == 1
    assert re.search(r"^meshgen check\.+Failed$", stale.stdout, re.M)
    assert "rendered/prod/mesh/ratings/virtualservice.yaml: error: stale" in stale.stdout
    assert "3 stale files under rendered/: run `meshgen render` and commit the result" in stale.stdout


# ----------------------------------------------------------------------------------- the workflow


def load_workflow() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())  # YAML 1.2: `on` stays a string


def run_steps(job: str) -> list[str]:
    return [step["run"] for step in load_workflow()["jobs"][job]["steps"] if "run" in step]


def test_workflow_is_valid_against_the_github_workflow_schema(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                               "vendor.github-workflows", str(path)], capture_output=True, text=True)

    ok = check(WORKFLOW)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert check(broken).returncode != 0  # the check can fail


def test_workflow_triggers_and_permissions() -> None:
    wf = load_workflow()
    assert set(wf["on"]) == {"pull_request", "schedule", "workflow_dispatch"}
    assert wf["permissions"] == {"contents": "read"}
    assert wf["jobs"]["review"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert wf["jobs"]["rollout"]["permissions"] == {"contents": "write"}
    assert wf["jobs"]["rollout"]["concurrency"]["cancel-in-progress"] is False


def shell(command: str, cwd: Path, tools: Path) -> subprocess.CompletedProcess[str]:
    """Run one ``run:`` command as the runner would (bash -e), GitHub expressions filled in."""
    for expr, value in GITHUB_CONTEXT.items():
        command = command.replace(f"${{{{ {expr} }}}}", value)
    assert "${{" not in command, f"unknown expression in {command!r}"
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "MESHGEN": "meshgen==0.1.0", "NO_COLOR": "1"}
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """``meshgen`` on PATH: this checkout's command line under its installed name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "meshgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m generator "$@"\n')
    (bin_dir / "meshgen").chmod(0o755)
    return bin_dir


def test_every_command_of_the_pull_request_job_runs(tmp_path: Path, tools: Path) -> None:
    """A pull request that moves ratings' weights and re-renders: check, validate and diff pass,
    and the markdown comment names the change."""
    origin = tmp_path / "origin.git"
    seed = example_repo(tmp_path / "seed")
    git("clone", "--quiet", "--bare", str(seed), str(origin), cwd=tmp_path)
    checkout = tmp_path / "checkout"
    git("clone", "--quiet", str(origin), str(checkout), cwd=tmp_path)  # fetch-depth: 0
    git("checkout", "--quiet", "-b", "weights", cwd=checkout)
    ratings = checkout / "apps" / "ratings.yaml"
    ratings.write_text(ratings.read_text().replace("to: {v1: 50, v2: 50}", "to: {v1: 80, v2: 20}"))
    assert shell("meshgen render", checkout, tools).returncode == 0
    git("commit", "--quiet", "-am", "Shift ratings to v1", cwd=checkout)

    ran = []
    for command in run_steps("review"):
        if command in NOT_RUN_HERE:
            continue
        proc = shell(command, checkout, tools)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        ran.append(command)
    assert ran == ["meshgen check", "meshgen validate",
                   'meshgen diff --base "origin/${{ github.base_ref }}" --format markdown > meshgen-diff.md']
    comment = (checkout / "meshgen-diff.md").read_text()
    assert comment.startswith("<!-- meshgen-diff -->\n### meshgen diff `origin/main@")
    assert ("**ratings/dev, prod, staging** — VirtualService changed\n"
            "- route `default`: v1 50 / v2 50 → v1 80 / v2 20\n") in comment


def test_commands_not_run_here_are_exactly_the_listed_ones() -> None:
    commands = run_steps("review") + run_steps("rollout")
    assert {c for c in commands if not c.startswith("meshgen ")} == set(NOT_RUN_HERE)


def test_the_scheduled_job_runs_a_rollout_tick(tmp_path: Path, tools: Path) -> None:
    """``meshgen rollout step --push`` on a repository with no active rollout: nothing to do,
    nothing pushed."""
    if subprocess.run([str(tools / "meshgen"), "rollout", "--help"], capture_output=True,
                      env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode != 0:
        pytest.skip("this build of meshgen has no rollout command")
    seed = example_repo(tmp_path / "seed")
    books = seed / "apps" / "books.yaml"
    books.write_text(books.read_text().split("  rollout:")[0])
    git("commit", "--quiet", "-am", "No rollout", cwd=seed)
    origin = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(seed), str(origin), cwd=tmp_path)
    checkout = tmp_path / "checkout"
    git("clone", "--quiet", "--branch", "main", str(origin), str(checkout), cwd=tmp_path)
    before = git("rev-parse", "main", cwd=origin)
    [tick] = [c for c in run_steps("rollout") if c not in NOT_RUN_HERE]
    proc = shell(tick, checkout, tools)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git("rev-parse", "main", cwd=origin) == before
