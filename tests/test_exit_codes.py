"""README's "## Commands" table is the one exit-code table: every command the CLI has is in it,
and every exit code it lists for a command is one that command really exits with, here.

Exit codes (DESIGN §4): 0 success, 1 invalid input or failed check, 2 usage error, 3 an
outside system (git remote, Prometheus) failed. Every command exits 2 on a wrong option, so 2
is listed everywhere.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import click
import pytest

from generator import cli
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.example import copy_example

SAMPLE = ROOT / "tests" / "istio-samples" / "samples" / "bookinfo" / "networking"
"""Istio's bookinfo samples (vendored), input of ``meshgen import``."""

APPROVAL = "promotion: {order: [dev, prod], approval: [dev]}\n"
"""meshgen.yaml of a pipeline in which dev needs approval."""


def commands_in_readme() -> dict[str, set[int]]:
    """``{command: exit codes}`` from README's Commands table (``rollout a / b / c`` rows split)."""
    section = ROOT.joinpath("README.md").read_text().split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[int]] = {}
    for line in section.splitlines():
        m = re.fullmatch(r"\| `meshgen ([^`]*)` \| .* \| ([0-9, ]+) \|", line)
        if not m:
            continue
        words = m.group(1).split()
        group = "rollout " if words[0] == "rollout" else ""
        spelled = m.group(1)[len(group):] if group else m.group(1)
        names = [n.strip() for n in spelled.split(" / ")] if " / " in spelled else [spelled.split()[0]]
        for name in names:
            out[group + name.split()[0]] = {int(c) for c in m.group(2).split(",")}
    return out


def commands_of_the_cli() -> set[str]:
    found = set()

    def walk(cmd: click.Command, prefix: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix}{name} ")
        else:
            found.add(prefix.strip())

    walk(cli.main, "")
    return found


# ------------------------------------------------------------------------------- scenarios


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def example(tmp: Path, settings: str | None = None) -> Path:
    """The bundled example as a git repository with one commit."""
    repo = copy_example(tmp / "config")
    if settings:
        (repo / "meshgen.yaml").write_text(settings)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "Example")
    return repo


def broken(tmp: Path) -> Path:
    """The example with a spec error (weights summing to 90), committed."""
    repo = example(tmp)
    ratings = repo / "apps" / "ratings.yaml"
    ratings.write_text(ratings.read_text().replace("to: {v1: 50, v2: 50}", "to: {v1: 50, v2: 40}"))
    git(repo, "commit", "-q", "-am", "Weights summing to 90")
    return repo


def clone_with_gone_remote(tmp: Path, settings: str | None = None) -> Path:
    """A clone of the example whose ``origin`` no longer exists."""
    seed = example(tmp, settings)
    git(tmp, "clone", "-q", "--bare", str(seed), str(tmp / "origin.git"))
    git(tmp, "clone", "-q", str(tmp / "origin.git"), str(tmp / "bot"))
    subprocess.run(["rm", "-rf", str(tmp / "origin.git")], check=True)
    return tmp / "bot"


def failing_git(tmp: Path, subcommand: str) -> dict[str, str]:
    """PATH with a ``git`` that fails ``git SUBCOMMAND`` (a broken git installation) and runs
    every other command with the real git."""
    real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(
        f'#!/bin/sh\nfor a in "$@"; do [ "$a" = {subcommand} ] && {{ echo "fatal: {subcommand} broken" >&2; exit 128; }}; done\n'
        f'exec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GIT_PYTHON_REFRESH": "quiet"}


def mg(*args: str, env: dict[str, str] | None = None) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """A scenario: ``meshgen ARGS`` in the example repository."""
    return lambda tmp: run_meshgen(*args, cwd=example(tmp), env=env)


def in_repo(make: Callable[[Path], Path], *args: str) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    return lambda tmp: run_meshgen(*args, cwd=make(tmp))


def stale(tmp: Path) -> subprocess.CompletedProcess[str]:
    repo = broken(tmp)
    ratings = repo / "apps" / "ratings.yaml"
    ratings.write_text(ratings.read_text().replace("to: {v1: 50, v2: 40}", "to: {v1: 40, v2: 60}"))
    return run_meshgen("check", cwd=repo)


def diff_git_fails(tmp: Path) -> subprocess.CompletedProcess[str]:
    repo = example(tmp)
    return run_meshgen("diff", cwd=repo, env=failing_git(tmp, "worktree"))


def publish_ok(tmp: Path) -> subprocess.CompletedProcess[str]:
    repo = example(tmp)
    git(tmp, "init", "-q", "--bare", "-b", "main", str(tmp / "deploy.git"))
    return run_meshgen("publish", "--to", str(tmp / "deploy.git"), "--branch", "main", cwd=repo)


def started(tmp: Path, settings: str | None = None) -> Path:
    """The example after a first tick in dev (rollouts of books started, committed)."""
    repo = example(tmp, settings)
    run_meshgen("rollout", "step", "--env", "dev", cwd=repo, check=True)
    return repo


def paused(tmp: Path) -> Path:
    repo = started(tmp)
    run_meshgen("rollout", "pause", "books", "--env", "dev", cwd=repo, check=True)
    return repo


def approved(tmp: Path) -> Path:
    repo = example(tmp, APPROVAL)
    run_meshgen("rollout", "approve", "books", "--env", "dev", cwd=repo, check=True)
    return repo


def run_interrupted(tmp: Path) -> subprocess.CompletedProcess[str]:
    """``rollout run`` stopped with Ctrl-C (SIGINT) after its first tick: a clean stop."""
    repo = example(tmp)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "generator", "rollout", "run", "--env", "dev", "--every", "1h"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Example" in git(repo, "log", "-1", "--format=%s"):
        time.sleep(0.1)  # the first tick commits the start of books' rollout
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


SCENARIOS: dict[str, dict[int, Callable[[Path], subprocess.CompletedProcess[str]]]] = {
    "render": {0: mg("render"), 1: in_repo(broken, "render"), 2: mg("render", "--env", "qa")},
    "check": {0: mg("check"), 1: stale, 2: mg("check", "--no-such-option")},
    "validate": {0: mg("validate"), 1: in_repo(broken, "validate"), 2: mg("validate", "--no-such-option")},
    "explain": {0: mg("explain", "ratings", "--env", "dev"), 1: mg("explain", "nosuch", "--env", "dev"),
                2: mg("explain", "ratings")},
    "diff": {0: mg("diff"), 1: in_repo(broken, "diff"), 2: mg("diff", "--base", "nosuchref"), 3: diff_git_fails},
    "publish": {0: publish_ok, 1: in_repo(broken, "publish", "--to", "/nonexistent", "--branch", "main"),
                2: mg("publish", "--branch", "main"),
                3: mg("publish", "--to", "/nonexistent/deploy.git", "--branch", "main")},
    "rollout step": {0: mg("rollout", "step", "--env", "dev"), 1: in_repo(broken, "rollout", "step"),
                     2: mg("rollout", "step", "--env", "qa"),
                     3: in_repo(clone_with_gone_remote, "rollout", "step", "--push")},
    "rollout run": {0: run_interrupted, 2: mg("rollout", "run", "--every", "soon")},
    "rollout status": {0: mg("rollout", "status"), 2: mg("rollout", "status", "--env", "qa")},
    "rollout pause": {0: in_repo(started, "rollout", "pause", "books", "--env", "dev"),
                      1: mg("rollout", "pause", "books", "--env", "dev"),
                      2: mg("rollout", "pause", "ratings", "--env", "dev"),
                      3: in_repo(clone_with_gone_remote, "rollout", "pause", "books", "--env", "dev", "--push")},
    "rollout resume": {0: in_repo(paused, "rollout", "resume", "books", "--env", "dev"),
                       1: in_repo(broken, "rollout", "resume", "books", "--env", "dev"),
                       2: mg("rollout", "resume", "ratings", "--env", "dev"),
                       3: in_repo(clone_with_gone_remote, "rollout", "resume", "books", "--env", "dev", "--push")},
    "rollout abort": {0: in_repo(started, "rollout", "abort", "books", "--env", "dev"),
                      1: in_repo(broken, "rollout", "abort", "books", "--env", "dev"),
                      2: mg("rollout", "abort", "ratings", "--env", "dev"),
                      3: in_repo(clone_with_gone_remote, "rollout", "abort", "books", "--env", "dev", "--push")},
    "rollout promote": {0: in_repo(started, "rollout", "promote", "books", "--env", "dev"),
                        1: in_repo(broken, "rollout", "promote", "books", "--env", "dev"),
                        2: mg("rollout", "promote", "ratings", "--env", "dev"),
                        3: in_repo(clone_with_gone_remote, "rollout", "promote", "books", "--env", "dev", "--push")},
    "rollout approve": {0: lambda tmp: run_meshgen("rollout", "approve", "books", "--env", "dev",
                                                   cwd=example(tmp, APPROVAL)),
                        1: in_repo(approved, "rollout", "approve", "books", "--env", "dev"),
                        2: mg("rollout", "approve", "books", "--env", "dev"),
                        3: lambda tmp: run_meshgen("rollout", "approve", "books", "--env", "dev", "--push",
                                                   cwd=clone_with_gone_remote(tmp, APPROVAL))},
    "rollout history": {0: mg("rollout", "history"), 2: mg("rollout", "history", "--since", "garbage")},
    "rollout backtest": {1: mg("rollout", "backtest", "ratings", "--env", "dev", "--from", "2026-11-01"),
                         2: mg("rollout", "backtest", "books", "--env", "dev"),
                         3: mg("rollout", "backtest", "books", "--env", "dev", "--from", "2026-11-01")},
    "report": {0: lambda tmp: run_meshgen("report", "--out", str(tmp / "site"), cwd=example(tmp)),
               1: lambda tmp: run_meshgen("report", "--out", str(tmp / "site"), cwd=broken(tmp)),
               2: mg("report"),
               3: lambda tmp: run_meshgen("report", "--out", str(tmp / "site"), cwd=example(tmp),
                                          env=failing_git(tmp, "log"))},
    "import": {0: mg("import", str(SAMPLE / "destination-rule-reviews.yaml"),
                     str(SAMPLE / "virtual-service-reviews-v3.yaml")),
               1: mg("import", str(SAMPLE / "fault-injection-details-v1.yaml")),
               2: mg("import", "no-such-file.yaml")},
    "init": {0: lambda tmp: run_meshgen("init", "config", cwd=tmp),
             2: lambda tmp: run_meshgen("init", str(example(tmp)), cwd=tmp),
             3: lambda tmp: run_meshgen("init", "config", cwd=tmp, env=failing_git(tmp, "commit"))},
}
"""For every command, a real run ending with each exit code README lists for it."""

PROMETHEUS_SCENARIOS = {("rollout backtest", 0)}
"""Cells run by :func:`test_the_command_exits_0_against_a_real_prometheus` (skipped without one)."""


def test_every_command_has_one_row_and_every_row_a_command() -> None:
    assert set(commands_in_readme()) == commands_of_the_cli()


def test_every_row_lists_the_codes_the_scenarios_show() -> None:
    """README's codes for each command are exactly those it is shown to exit with below."""
    table = commands_in_readme()
    for command, codes in table.items():
        shown = set(SCENARIOS.get(command, {})) | {c for (name, c) in PROMETHEUS_SCENARIOS if name == command}
        assert codes == shown, f"{command}: README lists {sorted(codes)}, the scenarios show {sorted(shown)}"
        assert 2 in codes, f"{command}: every command exits 2 on a wrong option"


@pytest.mark.parametrize("command,code", [(c, code) for c, codes in SCENARIOS.items() for code in codes])
def test_the_command_exits_with_the_listed_code(tmp_path: Path, command: str, code: int) -> None:
    proc = SCENARIOS[command][code](tmp_path)
    assert proc.returncode == code, f"{command}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    if code:
        assert "rror" in proc.stderr, proc.stderr  # says what went wrong


@pytest.mark.prometheus
def test_the_command_exits_0_against_a_real_prometheus(tmp_path: Path, prometheus) -> None:
    """``rollout backtest`` over an hour of a real Prometheus that has no series for the app:
    every interval holds, and the run succeeds."""
    repo = example(tmp_path)
    proc = run_meshgen("rollout", "backtest", "books", "--env", "dev", "--from", "1h",
                       cwd=repo, env={"MESHGEN_PROMETHEUS_URL": prometheus.url})
    assert proc.returncode == 0, proc.stdout + proc.stderr


CONFORMANCE = ROOT / "tests" / "gateway-api-conformance"
OBJECTS_SCENARIOS: dict[int, Callable[[Path], subprocess.CompletedProcess[str]]] = {
    0: lambda tmp: run_meshgen("explain", "--objects", str(CONFORMANCE / "base/manifests.yaml"),
                               str(CONFORMANCE / "tests/httproute-matching.yaml"),
                               "--gateway", "gateway-conformance-infra/same-namespace", "--uri", "/v2", cwd=tmp),
    1: lambda tmp: run_meshgen("explain", "--objects", str(build_file_tree(tmp, {"bad.yaml": "kind: [\n"}) / "bad.yaml"),
                               "--gateway", "default/gw", cwd=tmp),
    2: lambda tmp: run_meshgen("explain", "--objects", str(CONFORMANCE / "base/manifests.yaml"),
                               "--gateway", "nosuch/gw", cwd=tmp),
}
"""``explain --objects``: the README row's codes, each shown by a real run."""


@pytest.mark.parametrize("code", sorted(OBJECTS_SCENARIOS))
def test_explain_objects_exits_with_the_listed_code(tmp_path: Path, code: int) -> None:
    proc = OBJECTS_SCENARIOS[code](tmp_path)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    if code:
        assert "rror" in proc.stderr, proc.stderr
    rows = [line for line in ROOT.joinpath("README.md").read_text().splitlines()
            if line.startswith("| `meshgen explain --objects")]
    assert len(rows) == 1 and rows[0].endswith(f"| {', '.join(map(str, sorted(OBJECTS_SCENARIOS)))} |")
