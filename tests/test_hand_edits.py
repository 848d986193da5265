"""What people do to the bot's clone and its files by hand: a status file edited into a state
no tick writes, a clone left in the middle of a merge or rebase, and what the bot then says.

Real git repositories with a bare remote; ticks that need no Prometheus (policy ``time``).
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from generator.render import output, render
from tests.conftest import build_file_tree, run_meshgen
from tests.promfixtures import git

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: hand}}
spec:
  service: {{host: ratings, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
  rollout: {rollout}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  cluster: {{name: {name}, server: https://{name}.example.com}}
  prometheus: {{url: "http://127.0.0.1:9"}}
"""
STATUS = "status/dev/ratings.yaml"


def rollout_block(**extra) -> str:
    block = {"stable": "v1", "canary": "v2", "route": "default", "steps": [20, 50, 100], "interval": "1h",
             "policy": "time", "analysis": {"failureLimit": 2}}
    block.update(extra)
    return json.dumps(block)


@pytest.fixture
def started(tmp_path, git_remote):
    """A config repo whose ratings rollout the bot started in dev (20 %), pushed; returns
    ``(remote, clone)``."""
    tree = build_file_tree(tmp_path / "bot", {"apps/ratings.yaml": APP.format(rollout=rollout_block()),
                                              "environments/dev.yaml": ENV.format(name="dev")})
    output.write_rendering(tree, render.render_repo(tree))
    remote, work = git_remote(tree)
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    return remote, work


def edit_status(work: Path, **changes) -> None:
    """Change the status file as a person would, commit and push it."""
    path = work / STATUS
    doc = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, _, field = key.rpartition(".")
        doc[section or "status"][field] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(work, "commit", "-qam", "edit the status by hand")
    git(work, "push", "-q")


def line_of(work: Path, key: str) -> int:
    """The 1-based line of ``key:`` in the status file."""
    lines = (work / STATUS).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(f"{key}:"))


IMPOSSIBLE = [
    ("succeeded at 20 %", {"phase": "Succeeded"}, "canaryWeight",
     "phase Succeeded with canaryWeight 20", "delete the file"),
    ("rolled back at 20 %", {"phase": "RolledBack"}, "canaryWeight",
     "phase RolledBack with canaryWeight 20", "meshgen rollout resume ratings --env dev"),
    ("step index past the steps", {"stepIndex": 3}, "stepIndex",
     "stepIndex 3 is outside the 3 steps of the rollout (20, 50, 100)", "meshgen rollout abort ratings --env dev"),
    ("failed checks above the limit", {"failedChecks": 3}, "failedChecks",
     "failedChecks 3 is above the rollout's failureLimit 2", "meshgen rollout abort ratings --env dev"),
    ("another app's name", {"metadata.name": "reviews"}, "name",
     "metadata.name 'reviews' does not match the status file's file name 'ratings'", "delete it"),
    ("another environment", {"metadata.environment": "prod"}, "environment",
     "metadata.environment 'prod' does not match the status file's folder 'dev'", "delete it"),
]


@pytest.mark.parametrize("changes,key,message,hint", [c[1:] for c in IMPOSSIBLE], ids=[c[0] for c in IMPOSSIBLE])
def test_an_impossible_status_is_an_error_at_its_line_for_check_and_the_bot(started, changes, key, message, hint):
    remote, work = started
    edit_status(work, **changes)
    where = f"{STATUS}:{line_of(work, key)}:"
    check = run_meshgen("check", cwd=work)
    assert check.returncode == 1, check.stdout + check.stderr
    assert where in check.stderr and message in check.stderr and hint in check.stderr, check.stderr
    before = git(remote, "rev-parse", "main")
    step = run_meshgen("rollout", "step", "--push", cwd=work)
    assert step.returncode == 1, step.stdout + step.stderr
    assert where in step.stderr and message in step.stderr, step.stderr
    assert "Traceback" not in step.stderr
    assert git(remote, "rev-parse", "main") == before  # nothing acted on it
    assert git(work, "status", "--porcelain") == ""
    if key not in ("name", "environment"):  # rollout status still reads it, and says what is wrong
        shown = run_meshgen("rollout", "status", cwd=work)
        assert where in shown.stderr and message in shown.stderr, shown.stderr


def test_a_rolled_back_status_edited_to_a_weight_is_repaired_by_resume(started):
    remote, work = started
    edit_status(work, phase="RolledBack")
    run_meshgen("rollout", "resume", "ratings", "--env", "dev", "--push", cwd=work, check=True)
    assert yaml.safe_load((work / STATUS).read_text())["status"]["phase"] == "Progressing"
    run_meshgen("check", cwd=work, check=True)
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)


def test_a_possible_status_passes(started):
    remote, work = started
    edit_status(work, failedChecks=1, stepIndex=-1)  # odd, yet a state the bot could be in
    run_meshgen("check", cwd=work, check=True)
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)


# --- a clone in the middle of a merge, rebase, cherry-pick, revert, bisect or am -----------------

SPEC = "apps/ratings.yaml"


def commit_port(work: Path, port: int, message: str) -> str:
    """Commit ``apps/ratings.yaml`` with the service on ``port``; return the commit."""
    spec = work / SPEC
    spec.write_text(spec.read_text().replace(spec.read_text().split("port: ")[1].split("}")[0], str(port), 1))
    git(work, "commit", "-qam", message)
    return git(work, "rev-parse", "HEAD").strip()


def run_git(work: Path, *args: str) -> None:
    """A git command that stops for a person (a conflict): its exit status does not matter."""
    subprocess.run(["git", *args], cwd=work, capture_output=True, text=True)


def conflicting(work: Path) -> str:
    """A branch ``side`` whose spec change conflicts with one on main; returns side's commit."""
    git(work, "checkout", "-q", "-b", "side")
    side = commit_port(work, 81, "port 81")
    git(work, "checkout", "-q", "main")
    commit_port(work, 82, "port 82")
    return side


def merging(work: Path) -> None:
    conflicting(work)
    run_git(work, "merge", "side")


def merging_status_only(work: Path) -> None:  # the conflict only in a bot-owned file
    path = work / STATUS
    git(work, "checkout", "-q", "-b", "side")
    path.write_text(path.read_text().replace("failedChecks: 0", "failedChecks: 1"))
    git(work, "commit", "-qam", "one failed check")
    git(work, "checkout", "-q", "main")
    path.write_text(path.read_text().replace("failedChecks: 0", "failedChecks: 0\n# checked by hand"))
    git(work, "commit", "-qam", "a note")
    run_git(work, "merge", "side")


def rebasing(work: Path) -> None:
    conflicting(work)
    run_git(work, "rebase", "side")


def rebasing_apply(work: Path) -> None:
    conflicting(work)
    run_git(work, "rebase", "--apply", "side")


def cherry_picking(work: Path) -> None:
    side = conflicting(work)
    run_git(work, "cherry-pick", side)


def reverting(work: Path) -> None:
    first = commit_port(work, 82, "port 82")
    commit_port(work, 83, "port 83")
    run_git(work, "revert", "--no-edit", first)


def bisecting(work: Path) -> None:
    run_git(work, "bisect", "start")


def applying_mail(work: Path) -> None:
    side = conflicting(work)
    patch = subprocess.run(["git", "format-patch", "-1", "--stdout", side], cwd=work, capture_output=True,
                           check=True).stdout
    subprocess.run(["git", "am", "-3"], cwd=work, input=patch, capture_output=True)


IN_PROGRESS = [
    ("merge", merging, "MERGE_HEAD", "a merge is in progress", "git merge --abort"),
    ("merge of status only", merging_status_only, "MERGE_HEAD", "a merge is in progress", "git merge --abort"),
    ("rebase", rebasing, "rebase-merge", "a rebase is in progress", "git rebase --abort"),
    ("rebase --apply", rebasing_apply, "rebase-apply", "a rebase is in progress", "git rebase --abort"),
    ("cherry-pick", cherry_picking, "CHERRY_PICK_HEAD", "a cherry-pick is in progress", "git cherry-pick --abort"),
    ("revert", reverting, "REVERT_HEAD", "a revert is in progress", "git revert --abort"),
    ("bisect", bisecting, "BISECT_LOG", "a bisect is in progress", "git bisect reset"),
    ("am", applying_mail, "rebase-apply", "a git am is in progress", "git am --abort"),
]


@pytest.mark.parametrize("make,left,what,how", [c[1:] for c in IN_PROGRESS], ids=[c[0] for c in IN_PROGRESS])
def test_a_clone_in_the_middle_of_a_git_operation_is_exit_2_and_left_as_it_is(started, make, left, what, how):
    remote, work = started
    before = git(remote, "rev-parse", "main")
    make(work)
    assert (work / ".git" / left).exists(), f"git left no {left}"
    state = git(work, "status", "--porcelain")
    for args in (["rollout", "step", "--push"], ["rollout", "abort", "ratings", "--push"]):
        proc = run_meshgen(*args, cwd=work)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert what in proc.stderr and how in proc.stderr and left in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert (work / ".git" / left).exists()  # the person's operation is theirs to finish
    assert git(work, "status", "--porcelain") == state
    assert git(remote, "rev-parse", "main") == before


def test_check_names_an_unresolved_conflict_marker(started):
    remote, work = started
    merging(work)
    lines = (work / SPEC).read_text().splitlines()
    line = lines.index("<<<<<<< HEAD") + 1
    proc = run_meshgen("check", cwd=work)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{SPEC}:{line}:1: error: unresolved merge conflict marker '<<<<<<< HEAD'" in proc.stderr, proc.stderr
    assert "invalid YAML" not in proc.stderr


# --- what the bot says --------------------------------------------------------------------------


def test_a_step_with_nothing_due_says_when_the_next_check_is(started):
    remote, work = started
    last = datetime.fromisoformat(yaml.safe_load((work / STATUS).read_text())["status"]["lastStepTime"]
                                  .replace("Z", "+00:00"))
    proc = run_meshgen("rollout", "step", cwd=work, check=True)
    due = (last + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert proc.stdout.startswith(f"nothing due; next check: dev/ratings at {due} (in "), proc.stdout
    edit_status(work, phase="Paused")
    proc = run_meshgen("rollout", "step", cwd=work, check=True)
    assert proc.stdout == "nothing due: no rollout is progressing (dev/ratings: rollout is Paused)\n"


def test_status_lists_environments_in_pipeline_order_and_keeps_its_header_whole_when_piped(tmp_path, git_remote):
    files = {"apps/ratings.yaml": APP.format(rollout=rollout_block()),
             "meshgen.yaml": "apiVersion: meshgen.io/v1alpha1\nkind: Settings\n"
                             "promotion: {order: [dev, staging, prod]}\n"}
    for env in ("dev", "staging", "prod", "lab", "canary-lab"):
        files[f"environments/{env}.yaml"] = ENV.format(name=env)
    tree = build_file_tree(tmp_path / "bot", files)
    output.write_rendering(tree, render.render_repo(tree))
    remote, work = git_remote(tree)
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)  # starts dev; staging, prod wait
    proc = run_meshgen("rollout", "status", cwd=work, env={"COLUMNS": ""}, check=True)  # a pipe, no width
    lines = proc.stdout.splitlines()
    rows = [line.split("│")[2].strip() for line in lines if line.startswith("│ ratings")]
    assert rows == ["dev", "staging", "prod", "canary-lab", "lab"], proc.stdout
    header = [line for line in lines if line.startswith("┃")]
    assert len(header) == 1 and "last check" in header[0] and "metrics" in header[0], proc.stdout
