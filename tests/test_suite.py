"""The suite's own machinery: ``meshgen`` run through the fork server answers exactly as a fresh
``python -m generator`` does, and the longest tests are handed out first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import forkserver
from tests.conftest import ROOT, _cli_env, _server, build_file_tree, run_meshgen

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {}
"""


def plain(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator", *args], cwd=cwd, env={**_cli_env(), **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_a_forked_run_answers_as_a_fresh_interpreter(tmp_path):
    """Exit code, stdout and stderr of runs that succeed, fail on input and are used wrongly,
    in the caller's directory and with its environment, are those of a plain subprocess."""
    server = _server()
    assert server is not None and forkserver.usable(_cli_env(), server.env)
    repo = build_file_tree(tmp_path / "repo", {"environments/dev.yaml": ENV,
                                               "apps/books.yaml": "apiVersion: meshgen.io/v1alpha1\nkind: Ap\n"})
    for args, env in ((("check",), None), (("no-such-command",), None), (("render", "--verbose"), None),
                      (("rollout", "history"), {"MESHGEN_NO_CACHE": "1"}), (("--version",), None)):
        forked = server.run(list(args), repo, {**_cli_env(), **(env or {})}, timeout=120)
        fresh = plain(*args, cwd=repo, env=env)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr), \
            args
    assert forked.returncode == 0 and forked.stdout.startswith("meshgen")
    # the environment is the caller's, down to the git it runs: not a repository, until GIT_DIR names one
    valid = build_file_tree(tmp_path / "valid", {"environments/dev.yaml": ENV})
    assert run_meshgen("rollout", "history", cwd=valid).returncode == 2
    subprocess.run(["git", "init", "-q", str(tmp_path / "git")], check=True)
    proc = run_meshgen("rollout", "history", cwd=valid, env={"GIT_DIR": str(tmp_path / "git" / ".git")})
    assert (proc.returncode, proc.stdout) == (0, "no rollout history: no commit changed a status file\n")


def test_what_an_interpreter_reads_at_start_up_gets_a_plain_one():
    env = _cli_env()
    assert forkserver.usable(dict(env, HOME="/elsewhere", MESHGEN_NO_CACHE="1"), env)
    for key, value in (("PYTHONHASHSEED", "7"), ("NO_COLOR", ""), ("LC_ALL", "C"), ("COLUMNS", "80")):
        assert not forkserver.usable(dict(env, **{key: value + "x"}), env), key


def test_the_longest_tests_are_collected_first():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=",
                           "tests/test_analysis.py", "tests/test_yamlq.py"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids[0] == "tests/test_yamlq.py::test_any_value_round_trips_through_yaml"
    assert len(ids) == len(set(ids)) and any(i.startswith("tests/test_analysis.py::") for i in ids[1:])
